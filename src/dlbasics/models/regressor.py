"""Regression system: mean squared error loss and R^2."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MetricCollection, R2Score

from dlbasics.models.system import System


class Regressor(System):
    """A network trained with MSE; logs ``<stage>/loss`` (the MSE, averaged over samples and outputs), ``<stage>/r2``.

    There is no separate MSE metric: it would be the loss again, one more metric to update, compute and log
    every epoch (measurable on the lessons' tiny full-batch runs, ``python -m benchmarks``).

    ``num_outputs`` is the number of regression targets; ``predict`` returns ``(B, num_outputs)``.
    The arguments are ``System``'s.
    """

    def make_metrics(self, num_outputs: int) -> MetricCollection:
        return MetricCollection({"r2": R2Score(multioutput="uniform_average")})

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(outputs, targets)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self.network(batch[0])
