"""One layer's running activation statistics over an epoch, on the training device: moments, dead and saturated
units, a histogram. ``ActivationStats`` keeps one ``LayerSums`` per watched layer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

# Output <= 0 exactly when the pre-activation is <= 0, so "never positive" = would be a dead ReLU unit. Only a ReLU
# unit is then dead (zero gradient for every input); the others still pass gradient, and are only "negative".
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
    """One layer's running statistics over an epoch, kept on the training device: no host sync until `pack`.

    Dead units are tracked per call of the module within a batch and per unit count: one activation instance used
    at several places of a forward (torchvision's ``Bottleneck.relu`` runs three times, at two widths) has the
    units of each place, and an output whose unit count changes between calls starts a set of its own instead of
    failing to match the first call's.
    """

    def __init__(self, name: str, bins: int, hist_max_values: int | None = None, unit_dim: int | None = None) -> None:
        self.name, self.bins, self.hist_max_values, self.unit_dim = name, bins, hist_max_values, unit_dim
        self.kind, self.hist_range = "", (0.0, 0.0)
        self.moments: Tensor | None = None  # n, mean, M2 (sum of squared deviations)
        self.alive: dict[tuple[int, int], Tensor] = {}  # (call in the batch, units) -> (units,) any value > 0
        self.dims_used: set[int] = set()  # the unit dims the outputs were read on, as non-negative indices
        self.seen = False  # any batch added since the last `pack`
        self._warned = False

    def add(self, y: Tensor, kind: str, hist_range: tuple[float, float], call: int = 0) -> None:
        y = y.detach().float()
        if self.moments is None:
            self.moments = y.new_zeros(3)
            self.counts = y.new_zeros(3)  # elements seen as a ReLU-family kind, as sigmoid/tanh; saturated elements
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
            self._mark_alive(y, call)
        if kind in SATURATED:
            self.counts[1] += n_b
            self.counts[2] += SATURATED[kind](y).sum()
        self.hist += histogram(histogram_sample(y, self.hist_max_values), self.bins, *hist_range)

    def _mark_alive(self, y: Tensor, call: int) -> None:
        """Or this output's per-unit "any value > 0" into the units of (call, unit count)."""
        if y.dim() < 2:  # (B,): one value per example, the whole output is one unit
            dim, positive = 0, y.amax().reshape(1) > 0
        else:
            dim = self.unit_dim if self.unit_dim is not None else 1 if y.dim() >= 4 else -1  # channels / features
            if not -y.dim() <= dim < y.dim():
                self._warn_once(y, dim)
                return
            dim %= y.dim()
            positive = y.amax(dim=[d for d in range(y.dim()) if d != dim]) > 0  # (units,)
        self.dims_used.add(dim)
        key = (call, positive.numel())
        alive = self.alive.get(key)
        self.alive[key] = positive if alive is None else alive | positive

    def _warn_once(self, y: Tensor, dim: int) -> None:
        if not self._warned:
            self._warned = True
            rank_zero_warn(f"ActivationStats: layer {self.name!r} put out shape {tuple(y.shape)}, which has no dim "
                           f"{dim} to count units on (unit_dims); its dead units are not counted. Set unit_dims for "
                           "it to a dim in range.")

    def pack(self, keys: list[tuple[int, int]]) -> Tensor:
        """Everything as one flat float tensor, the units in ``keys`` order (zeros for keys this rank never saw),
        then zeroed for the next epoch."""
        alive = [self.alive[k].float() if k in self.alive else self.hist.new_zeros(k[1]) for k in keys]
        packed = torch.cat([self.moments, self.counts, self.hist, *alive])
        for tensor in (self.moments, self.counts, self.hist):
            tensor.zero_()
        self.alive, self.seen = {}, False
        return packed

    def size(self, keys: list[tuple[int, int]]) -> int:
        """The length of ``pack(keys)``."""
        return 6 + self.bins + sum(units for _, units in keys)

    def read(self, rows: np.ndarray) -> dict[str, Any]:
        """Statistics from ``pack`` results gathered from every rank, ``rows`` of shape (ranks, size)."""
        n, mean = rows[:, 0], rows[:, 1]
        total = n.sum()
        mean_all = float((n * mean).sum() / total)
        m2 = rows[:, 2].sum() + (n * (mean - mean_all) ** 2).sum()  # Chan et al. again, across ranks
        dead_seen, sat_seen, saturated = rows[:, 3:6].sum(0)
        alive = rows[:, 6 + self.bins :].max(0)  # a unit alive on any rank is alive
        stats = {"kind": self.kind, "mean": mean_all, "std": float(np.sqrt(m2 / total))}
        if dead_seen and alive.size:
            name = "dead_frac" if self.kind == "relu" else "negative_frac"
            stats.update({name: float(1.0 - alive.mean(dtype=np.float64)), "units": int(alive.size)})
            if len(self.dims_used) == 1:
                stats["unit_dim"] = next(iter(self.dims_used))
        if sat_seen:
            stats["saturated_frac"] = float(saturated / sat_seen)
        stats.update(hist=rows[:, 6 : 6 + self.bins].sum(0).tolist(), hist_range=list(self.hist_range))
        return stats


def unit_keys(trainer: Trainer, keys: dict[str, list[tuple[int, int]]]) -> dict[str, list[tuple[int, int]]]:
    """Each layer's (call, units) keys, the union over the DDP ranks, so that every rank packs the same sizes.

    Ranks nearly always see the same keys; one whose batches differ in shape (or that skipped a call) would
    otherwise pack a tensor of another length and the all-gather would fail.
    """
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return keys
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, keys)
    return {name: sorted({tuple(key) for rank in gathered for key in rank.get(name, [])}) for name in keys}
