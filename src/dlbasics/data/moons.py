"""Two interleaving half circles (scikit-learn's ``make_moons``): the notebook lessons' 2-D task."""

from __future__ import annotations

import torch
from sklearn.datasets import make_moons

from dlbasics.checks import check_int, check_number
from dlbasics.data.base import BatchSize, Split, TensorDataModule, take_splits
from dlbasics.data.splits import split_sizes, stratified_split


class MoonsDataModule(TensorDataModule):
    """``make_moons(n_samples, noise, random_state=seed)`` with stratified train/val/test splits.

    The defaults are the notebook lesson's: 2000 samples, noise 0.25, 25% test, batch 64.

    Args:
        n_samples: number of points in all splits together.
        noise: standard deviation of the Gaussian noise added to the points.
        val_fraction: share of the points held out for validation (0: validate on the test split).
        test_fraction: share of the points held out for testing.
        batch_size: training batch size, or ``"full"``.
        eval_batch_size: batch size for validation and test; None uses ``batch_size``.
        seed: seed of the points, the splits and the training order.
    """

    def __init__(self, n_samples: int = 2000, noise: float = 0.25, val_fraction: float = 0.0,
                 test_fraction: float = 0.25, batch_size: BatchSize = 64, eval_batch_size: BatchSize | None = None,
                 seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        check_int(n_samples, "n_samples", minimum=2)
        check_number(noise, "noise", minimum=0.0)
        # Fails now, not when the trainer has created the run folder, on splits that would be empty or too small
        # to hold both classes (the split is stratified).
        split_sizes(n_samples, val_fraction, test_fraction, min_size=self.num_outputs)
        self.n_samples, self.noise = n_samples, noise
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def num_outputs(self) -> int:
        return 2

    def build_splits(self) -> dict[str, Split]:
        x, y = make_moons(n_samples=self.n_samples, noise=self.noise, random_state=self.seed)
        x, y = torch.from_numpy(x).float(), torch.from_numpy(y).long()  # float64 -> float32 for MPS
        parts = stratified_split(y, self.val_fraction, self.test_fraction, self.seed)
        return take_splits(x, y, parts)
