"""Classification system: cross-entropy loss, accuracy."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from dlbasics.models.system import System


class Classifier(System):
    """A network trained with cross-entropy; logs ``<stage>/loss`` and ``<stage>/acc``.

    ``num_outputs`` is the number of classes; ``predict`` returns class probabilities ``(B, classes)``.
    The arguments are ``System``'s.
    """

    def make_metrics(self, num_outputs: int) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(num_classes=num_outputs, average="micro")})

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self.network(batch[0]).softmax(dim=-1)
