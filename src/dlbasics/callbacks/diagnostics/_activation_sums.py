"""One layer's running activation statistics over an epoch, on the training device: moments, dead and saturated
units, a histogram. ``ActivationStats`` keeps one ``LayerSums`` per watched layer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

# Output <= 0 exactly when the pre-activation is <= 0, so "never positive" = would be a dead ReLU unit.
DEAD_KINDS = ("relu", "leaky_relu", "elu", "gelu", "silu")
SATURATED = {"sigmoid": lambda y: (y < 0.01) | (y > 0.99), "tanh": lambda y: y.abs() > 0.97}
# Fixed histogram range per activation; values outside are counted in no bin.
HIST_RANGES = {
    "sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 4.0), "leaky_relu": (-0.5, 4.0),
    "elu": (-1.0, 4.0), "gelu": (-0.5, 4.0), "silu": (-0.5, 4.0), "identity": (-4.0, 4.0),
}  # fmt: skip


def histogram(y: Tensor, bins: int, low: float, high: float) -> Tensor:
    """Counts of ``y`` in ``bins`` equal bins over ``[low, high]`` (values outside are not counted), on ``y``'s device.

    ``torch.histc`` is one pass and the fast choice, but it raises on CUDA under
    ``torch.use_deterministic_algorithms`` (``Trainer(deterministic=True)``); there a 1-D ``scatter_add_``, which
    has a deterministic CUDA path, does the same count.
    """
    if not (y.is_cuda and torch.are_deterministic_algorithms_enabled()):
        return torch.histc(y.detach().flatten().float(), bins=bins, min=low, max=high)
    return scatter_histogram(y, bins, low, high)


def scatter_histogram(y: Tensor, bins: int, low: float, high: float) -> Tensor:
    """``histogram`` by ``scatter_add_``: slower on CPU, but deterministic on CUDA."""
    pos = torch.nan_to_num((y.flatten() - low) * (bins / (high - low)), nan=-1.0)
    index = torch.where(pos == bins, bins - 1, pos.floor()).clamp(-1, bins).long() + 1  # 0: below, bins + 1: above
    counts = torch.zeros(bins + 2, device=y.device).scatter_add_(0, index, torch.ones_like(pos))
    return counts[1:-1]


def histogram_sample(y: Tensor, max_values: int | None) -> Tensor:
    """Whole examples of the batch ``y``, evenly spaced (every k-th), at most ``max_values`` values (at least one
    example); all of ``y`` if it is no larger or ``max_values`` is None.

    Counting a histogram is a slow single pass on CPU, and on a conv layer's output it dominates the statistics;
    the distribution's shape needs far fewer values than such a layer puts out. (What it costs: benchmarks/RESULTS.md,
    "Measurements quoted from the code"; ``python -m benchmarks --only callbacks`` times the whole callback.)
    """
    if max_values is None or y.numel() <= max_values:
        return y
    examples = max(1, max_values // y[0].numel())  # whole examples that fit (a 1-D batch: one value each)
    return y[:: math.ceil(len(y) / examples)]


class LayerSums:
    """One layer's running statistics over an epoch, kept on the training device: no host sync until `pack`."""

    def __init__(self, bins: int, hist_max_values: int | None = None) -> None:
        self.bins, self.hist_max_values, self.kind, self.hist_range = bins, hist_max_values, "", (0.0, 0.0)
        self.moments: Tensor | None = None  # n, mean, M2 (sum of squared deviations)
        self.seen = False  # any batch added since the last `pack`

    def add(self, y: Tensor, kind: str, hist_range: tuple[float, float]) -> None:
        y = y.detach().float()
        if self.moments is None:
            self.moments = y.new_zeros(3)
            self.counts = y.new_zeros(3)  # elements seen as a ReLU-family kind, as sigmoid/tanh; saturated elements
            units = y.shape[1] if y.dim() > 1 else 1  # features of (B, F), channels of (B, C, H, W)
            self.alive = torch.zeros(units, dtype=torch.bool, device=y.device)
            self.hist = y.new_zeros(self.bins)
        if hist_range != self.hist_range:  # first call, or the layer was swapped: restart the epoch's histogram
            self.hist.zero_()
        self.kind, self.hist_range, self.seen = kind, hist_range, True
        # Merge this batch's moments into the running ones (Chan et al.), stable in float32. Two passes over the
        # batch (mean, then squared deviations) are exact and faster on CPU than torch.var_mean (benchmarks/RESULTS.md).
        n_b = y.numel()
        mean_b = y.mean()
        var_b = (y - mean_b).square().mean()
        n_a, mean_a, m2_a = self.moments.unbind()
        n, delta = n_a + n_b, mean_b - mean_a
        self.moments = torch.stack([n, mean_a + delta * n_b / n, m2_a + var_b * n_b + delta.square() * n_a * n_b / n])
        if kind in DEAD_KINDS:
            self.counts[0] += n_b
            self.alive |= y.amax(dim=[d for d in range(y.dim()) if d != 1]).reshape(-1) > 0  # (C,): any value > 0
        if kind in SATURATED:
            self.counts[1] += n_b
            self.counts[2] += SATURATED[kind](y).sum()
        self.hist += histogram(histogram_sample(y, self.hist_max_values), self.bins, *hist_range)

    def pack(self) -> Tensor:
        """Everything as one flat float tensor, then zeroed for the next epoch."""
        packed = torch.cat([self.moments, self.counts, self.alive.float(), self.hist])
        for tensor in (self.moments, self.counts, self.alive, self.hist):
            tensor.zero_()
        self.seen = False
        return packed

    def read(self, rows: np.ndarray) -> dict[str, Any]:
        """Statistics from ``pack`` results gathered from every rank, ``rows`` of shape (ranks, size)."""
        n, mean = rows[:, 0], rows[:, 1]
        total = n.sum()
        mean_all = float((n * mean).sum() / total)
        m2 = rows[:, 2].sum() + (n * (mean - mean_all) ** 2).sum()  # Chan et al. again, across ranks
        dead_seen, sat_seen, saturated = rows[:, 3:6].sum(0)
        alive = rows[:, 6:-self.bins].max(0)
        stats = {"kind": self.kind, "mean": mean_all, "std": float(np.sqrt(m2 / total))}
        if dead_seen:
            stats["dead_frac"] = float(1.0 - alive.mean())
        if sat_seen:
            stats["saturated_frac"] = float(saturated / sat_seen)
        stats.update(hist=rows[:, -self.bins :].sum(0).tolist(), hist_range=list(self.hist_range))
        return stats
