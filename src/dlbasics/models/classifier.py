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
        if num_outputs < 2:  # torchmetrics would say only "num_classes ... larger than 1, but got 1"
            raise ValueError(f"Classifier needs at least 2 classes, but the data has num_outputs={num_outputs}: a "
                             "regression target? Use dlbasics.models.Regressor (--model=dlbasics.models.Regressor) "
                             "or read the data for classification (--data.task classification)")
        return MetricCollection({"acc": MulticlassAccuracy(num_classes=num_outputs, average="micro")})

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self.network(batch[0]).softmax(dim=-1)
