"""GradientFlowMonitor's per-layer sums over the optimizer steps of an interval, kept on the training device."""

from __future__ import annotations

import math

import torch
from torch import Tensor

STATS = ("mean_abs", "l2", "max_abs", "ratio")


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
