"""Split helpers: fractions to sizes, ordered, shuffled and stratified seeded splits."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from dlbasics.checks import check_probability


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise a ValueError unless both fractions are in [0, 1) and leave a non-empty share for training."""
    check_probability(val_fraction, "val_fraction")
    check_probability(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves nothing to train on; "
            "their sum must be below 1"
        )


def split_sizes(n: int, val_fraction: float, test_fraction: float, min_size: int = 1) -> tuple[int, int, int]:
    """(train, val, test) sizes of ``n`` samples; a non-zero fraction that rounds to no sample is an error.

    ``min_size`` is the fewest samples a requested split may hold: a stratified split needs one per class.
    """
    check_fractions(val_fraction, test_fraction)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    for name, fraction, size in (("val", val_fraction, n_val), ("test", test_fraction, n_test),
                                 ("train", 1.0, n_train)):
        if fraction > 0 and size == 0:
            raise ValueError(f"the {name} split of {n} samples is empty; use more samples or a larger fraction")
        if fraction > 0 and size < min_size:
            raise ValueError(f"the {name} split of {n} samples would hold {size}, fewer than the {min_size} classes "
                             "a stratified split puts in it; use more samples or a larger fraction")
    return n_train, n_val, n_test


def ordered_split(n: int, val_fraction: float, test_fraction: float) -> tuple[Tensor, Tensor, Tensor]:
    """Indices of the first share (train), the next (val) and the last (test), as the lessons split."""
    n_train, n_val, _ = split_sizes(n, val_fraction, test_fraction)
    index = torch.arange(n)
    return index[:n_train], index[n_train : n_train + n_val], index[n_train + n_val :]


def shuffled_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``ordered_split`` of a seeded permutation of the indices: random parts of its sizes, each in file order."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return tuple(order[part].sort().values for part in ordered_split(n, val_fraction, test_fraction))  # type: ignore


def stratified_split(labels: Tensor, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded (train, val, test) indices of the sizes ``split_sizes`` gives, each keeping the class shares.

    scikit-learn's ``train_test_split(stratify=...)`` does the work: first the test split, then the
    validation split from the rest. Indices are sorted, so the stored order does not group classes.
    """
    n_train, n_val, n_test = split_sizes(len(labels), val_fraction, test_fraction, min_size=len(labels.unique()))
    index = np.arange(len(labels))
    y = labels.numpy()
    rest, test = _split_off(index, y, n_test, seed)
    train, val = _split_off(rest, y[rest], n_val, seed + 1)
    return tuple(torch.from_numpy(np.sort(part)) for part in (train, val, test))  # type: ignore[return-value]


def _split_off(index: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, split off) with ``n`` stratified samples split off; nothing when ``n`` is 0."""
    if n == 0:
        return index, index[:0]
    kept, taken = train_test_split(index, test_size=n, stratify=y, random_state=seed)
    return kept, taken
