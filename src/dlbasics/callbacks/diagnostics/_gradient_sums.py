"""GradientFlowMonitor's per-layer sums over the optimizer steps of an interval, kept on the training device."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlbasics.callbacks.diagnostics._gradients import stored_values

STATS = ("mean_abs", "l2", "max_abs", "ratio")
_TINY = torch.finfo(torch.float32).tiny


_CPU_CHUNK = 2**16  # values per piece on the CPU: |g| of a piece stays in cache for its three reductions


def step_rows(params: list[Tensor], indices: list[int], w_norms: list[Tensor], one: Tensor,
              scratch: dict[tuple[torch.device, torch.dtype], Tensor]) -> Tensor:
    """One step's ``(L, 5)`` rows as ``GradientSums.add`` reads them, on ``one``'s device, without a host sync.

    Rows of ``params[i]`` for ``i`` in ``indices`` (the parameters of the stepping optimizer) that have a gradient:
    mean |g|, ||g||, ||g|| / ||w|| with ``w_norms`` the weights' norms, max |g|, 1; all other rows are zeros.
    ``scratch`` keeps one buffer per device and dtype for |g|.
    """
    missing = torch.zeros(5, device=one.device)
    rows = [missing] * len(params)
    for i, w_norm in zip(indices, w_norms):
        if params[i].grad is None:
            continue
        l1, l2, max_abs = _abs_sum_norm_max(stored_values(params[i].grad), scratch)
        rows[i] = torch.stack([l1 / params[i].numel(), l2, l2 / w_norm.clamp_min(_TINY), max_abs, one]).to(one.device)
    return torch.stack(rows)


def _abs_sum_norm_max(values: Tensor, scratch: dict[tuple[torch.device, torch.dtype], Tensor]) -> list[Tensor]:
    """sum |g|, ||g|| and max |g| as float32 0-d tensors, reading ``values`` from memory once.

    |g| goes into a buffer made once (a fresh tensor per layer and step costs page faults on the CPU), and the
    three reductions read it there; on the CPU piece by piece, so that each piece is still in cache. That is 2x
    faster there than three whole-tensor passes, and vector_norm's ord=1 and ord=inf would be 3x and 15x slower
    still. amax propagates NaN, so a non-finite gradient reads as one.
    """
    flat = values.reshape(-1)
    pieces = flat.split(_CPU_CHUNK) if flat.device.type == "cpu" else (flat,)
    sums, norms, maxes = [], [], []
    for piece in pieces:
        absolute = torch.abs(piece, out=_buffer(scratch, piece))
        sums.append(absolute.sum(dtype=torch.float32))
        norms.append(torch.linalg.vector_norm(absolute, 2, dtype=torch.float32))
        maxes.append(absolute.amax())
    if len(pieces) == 1:
        return [sums[0], norms[0], maxes[0].float()]
    return [torch.stack(sums).sum(), torch.linalg.vector_norm(torch.stack(norms)), torch.stack(maxes).amax().float()]


def _buffer(scratch: dict[tuple[torch.device, torch.dtype], Tensor], like: Tensor) -> Tensor:
    """The first ``like.numel()`` values of the scratch buffer of ``like``'s device and dtype, grown when too small."""
    key = (like.device, like.dtype)
    if key not in scratch or scratch[key].numel() < like.numel():
        scratch[key] = torch.empty(like.numel(), device=like.device, dtype=like.dtype)
    return scratch[key][: like.numel()]


class GradientSums:
    """Per-layer sums over the steps of one interval, kept on the training device: no host sync until `read`."""

    def __init__(self, n_layers: int, device: torch.device) -> None:
        self.table = torch.zeros(n_layers, 6, device=device)  # sum mean_abs, l2, ratio | max max_abs | n ok | n bad
        self.steps = 0

    def add(self, stats: Tensor) -> None:
        """``stats`` (L, 5): mean_abs, l2, ratio, max_abs, present (1.0 if the layer had a gradient)."""
        present, finite = stats[:, 4] > 0, stats[:, 3].isfinite()
        ok = present & finite
        self.table[:, :3] += torch.where(ok[:, None], stats[:, :3], 0.0)
        self.table[:, 3] = torch.maximum(self.table[:, 3], torch.where(ok, stats[:, 3], 0.0))
        self.table[:, 4] += ok
        self.table[:, 5] += present & ~finite  # AMP overflow steps or real NaNs: counted, not averaged
        self.steps += 1

    def read(self) -> list[dict[str, float]]:
        """Average of the per-step statistics (max of max) per layer; NaN for a layer with no finite gradient."""
        rows = []
        for mean_abs, l2, ratio, max_abs, n, bad in self.table.cpu().tolist():  # the one host sync
            if n:
                row = {"mean_abs": mean_abs / n, "l2": l2 / n, "max_abs": max_abs, "ratio": ratio / n}
            else:  # no finite gradient in the interval
                row = dict.fromkeys(STATS, math.nan)
            rows.append({**row, "steps": int(n), "nonfinite_steps": int(bad)})
        self.table.zero_()
        self.steps = 0
        return rows


def flow_warning(layers: dict[str, dict[str, float]], vanishing_threshold: float, exploding_threshold: float) -> str:
    """``"vanishing gradients (...) in: a, b; exploding gradients (...) in: c"`` for an epoch's rows, or ``""``."""
    vanishing = [t for t, r in layers.items() if r["mean_abs"] < vanishing_threshold]
    exploding = [t for t, r in layers.items() if r["mean_abs"] > exploding_threshold or r["nonfinite_steps"]]
    parts = []
    if vanishing:
        parts.append(f"vanishing gradients (mean |grad| < {vanishing_threshold:g}) in: {', '.join(vanishing)}")
    if exploding:
        limit = f"mean |grad| > {exploding_threshold:g} or NaN/inf"
        parts.append(f"exploding gradients ({limit}) in: {', '.join(exploding)}")
    return "; ".join(parts)
