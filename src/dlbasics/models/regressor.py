"""Regression system: mean squared error loss, MSE and R^2."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanSquaredError, MetricCollection, R2Score

from dlbasics.models.system import System


class Regressor(System):
    """A network trained with MSE; logs ``<stage>/loss``, ``<stage>/mse`` and ``<stage>/r2``.

    ``num_outputs`` is the number of regression targets; ``predict`` returns ``(B, num_outputs)``.
    The arguments are ``System``'s.
    """

    def make_metrics(self, num_outputs: int) -> MetricCollection:
        return MetricCollection({"mse": MeanSquaredError(num_outputs=num_outputs),
                                 "r2": R2Score(multioutput="uniform_average")})

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(outputs, targets)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self.network(batch[0])
