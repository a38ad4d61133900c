"""Gaussian points in 2-D labelled by a named boundary: the activation, backprop and dropout lessons' tasks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from dlbasics.checks import check_choice, check_number, check_probability
from dlbasics.data.base import BatchSize, Split, TensorDataModule, take_splits
from dlbasics.data.splits import ordered_split, split_sizes

# Boundary name -> label rule on x of shape (N, 2).
BOUNDARIES: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x[:, 0] + x[:, 1] > 0,
    "quadratic": lambda x: x[:, 0] ** 2 + 0.8 * x[:, 1] > 0.5,
}


class Toy2DDataModule(TensorDataModule):
    """x ~ N(0, I) in 2-D, label 1 on one side of a boundary.

    ``linear``: x0 + x1 > 0 (L1, L2). ``quadratic``: x0^2 + 0.8 x1 > 0.5 (L4). The split is ordered, as in
    the lessons: the first share of the points trains, the next validates, the last tests.

    Args:
        boundary: ``linear`` or ``quadratic``.
        n_samples: number of points in all splits together.
        val_fraction: share of the points for validation (L4: 0.3; L1/L2: 0, train on all).
        test_fraction: share of the points for testing.
        batch_size: training batch size, or ``"full"`` (the lessons' full-batch training).
        eval_batch_size: batch size for validation and test; None uses ``batch_size``.
        seed: seed of the points, of the flipped labels and of the training order.
        label_noise: fraction of the training labels flipped to the other class, in [0, 1): exactly
            ``round(label_noise * len(train split))`` of them, chosen from ``seed``. Validation and test labels stay
            clean, and the points are the same as with 0, so a run with noise sees the same inputs.
        input_scale: multiply the two input features by these factors (every split), after the labels are drawn:
            ``[100, 1]`` makes feature 0 a hundred times larger with the same boundary (the optimizers lesson);
            None leaves them as drawn.
    """

    def __init__(self, boundary: Literal["linear", "quadratic"] = "linear", n_samples: int = 200,
                 val_fraction: float = 0.0, test_fraction: float = 0.0, batch_size: BatchSize = "full",
                 eval_batch_size: BatchSize | None = None, seed: int = 0, label_noise: float = 0.0,
                 input_scale: Sequence[float] | None = None) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        if input_scale is not None:
            if len(input_scale) != 2:
                raise ValueError(f"input_scale {list(input_scale)!r} needs one factor per input feature (2)")
            if any(check_number(f, "input_scale", minimum=0.0) == 0 for f in input_scale):
                raise ValueError(f"input_scale {list(input_scale)!r}: a factor of 0 erases its feature; use > 0")
        self.input_scale = None if input_scale is None else tuple(input_scale)
        check_choice(boundary, "boundary", list(BOUNDARIES))
        self.label_noise = check_probability(label_noise, "label_noise")
        split_sizes(n_samples, val_fraction, test_fraction)  # fails early on impossible splits
        self.boundary, self.n_samples = boundary, n_samples
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def num_outputs(self) -> int:
        return 2

    def build_splits(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.n_samples, 2, generator=generator)
        y = BOUNDARIES[self.boundary](x).long()
        parts = ordered_split(self.n_samples, self.val_fraction, self.test_fraction)
        if self.label_noise > 0:  # drawn after x: the points do not depend on the noise
            train = parts[0]
            flipped = train[torch.randperm(len(train), generator=generator)[: round(self.label_noise * len(train))]]
            y[flipped] = 1 - y[flipped]  # two classes: flip to the other one
        if self.input_scale is not None:  # labels come from the unscaled points: the same boundary, stretched
            x = x * torch.tensor(self.input_scale)
        return take_splits(x, y, parts)
