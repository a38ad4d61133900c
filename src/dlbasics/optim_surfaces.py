"""Optimizers on 2-D loss surfaces: torch's own optimizers stepping a 2-element parameter, many at once.

Each (start, learning rate) pair is a parameter of its own in its own param group, so one ``optimizer.step()``
moves every pair with its own learning rate, exactly as separate runs would (the surfaces add the pairs' losses,
and a pair's loss depends only on its own parameter, so each gradient is that pair's alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dlbasics.checks import check_int

OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "SGD": (torch.optim.SGD, {}),
    "SGD + momentum 0.9": (torch.optim.SGD, {"momentum": 0.9}),
    "RMSprop": (torch.optim.RMSprop, {}),
    "Adam": (torch.optim.Adam, {}),
    "AdamW": (torch.optim.AdamW, {}),  # torch's default weight decay, 0.01
}


@dataclass(frozen=True)
class Surface:
    """A loss over the plane: ``loss(p)`` maps points ``(..., 2)`` to losses ``(...)``; its minimum is 0.

    Args:
        name: shown in figures and tables.
        loss: the function.
        start: the default starting point.
        minimum: where the loss is 0.
        extent: ``(x0, x1, y0, y1)`` of the contour plot.
    """

    name: str
    loss: Callable[[Tensor], Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    extent: tuple[float, float, float, float]


# f = (x^2 + 100 y^2) / 2: curvature 100x larger along y than along x (condition number 100), axes aligned.
QUADRATIC = Surface("elongated quadratic (x^2 + 100 y^2) / 2", lambda p: 0.5 * (p[..., 0] ** 2 + 100 * p[..., 1] ** 2),
                    start=(-4.0, 0.5), minimum=(0.0, 0.0), extent=(-4.5, 1.0, -0.8, 0.8))
# Rosenbrock's banana valley, (1 - x)^2 + 100 (y - x^2)^2, from its classic start (-1.2, 1).
ROSENBROCK = Surface("Rosenbrock (1 - x)^2 + 100 (y - x^2)^2",
                     lambda p: (1 - p[..., 0]) ** 2 + 100 * (p[..., 1] - p[..., 0] ** 2) ** 2,
                     start=(-1.2, 1.0), minimum=(1.0, 1.0), extent=(-2.0, 2.0, -1.0, 3.0))


@dataclass
class Paths:
    """The trajectories of one optimizer from each start at each learning rate.

    ``points[s, l, t]`` is the point after ``t`` steps from ``starts[s]`` at ``lrs[l]``; ``losses[s, l, t]`` its
    loss. A diverged run's later values are NaN or inf.
    """

    optimizer: str
    lrs: tuple[float, ...]
    points: np.ndarray   # (starts, lrs, steps + 1, 2)
    losses: np.ndarray   # (starts, lrs, steps + 1)

    def steps_to(self, threshold: float) -> np.ndarray:
        """``(starts, lrs)``: the step from which the loss stays below ``threshold`` to the end (a run that dips
        below and bounces back out has not got there); inf where the last loss is not below it."""
        stays = np.flip(np.logical_and.accumulate(np.flip(self.losses < threshold, -1), axis=-1), -1)
        first = stays.argmax(axis=-1).astype(float)
        first[~stays[..., -1]] = math.inf
        return first

    def best_lr(self, threshold: float) -> np.ndarray:
        """``(starts,)``: index of the learning rate that gets below ``threshold`` in the fewest steps; where none
        does, the one whose final loss is lowest (diverged runs, NaN or inf, never count)."""
        steps = self.steps_to(threshold)
        final = np.where(np.isfinite(self.losses[..., -1]), self.losses[..., -1], np.inf)
        ranked = np.lexsort((final, steps), axis=-1)  # by steps, then by final loss
        return ranked[..., 0]


def trajectories(surface: Surface, optimizer: str, lrs: Sequence[float], starts: Tensor, steps: int) -> Paths:
    """Run ``OPTIMIZERS[optimizer]`` on ``surface`` from every start ``(S, 2)`` at every learning rate for ``steps``
    steps, in float64 (the loss reaches 1e-10 and below)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r} is not one of: {', '.join(OPTIMIZERS)}")
    if not lrs or any(not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)) for lr in lrs):
        raise ValueError(f"learning rates {list(lrs)!r} must be a non-empty list of positive numbers")
    check_int(steps, "steps", minimum=1)
    kind, settings = OPTIMIZERS[optimizer]
    params = [[torch.nn.Parameter(start.clone().double()) for _ in lrs] for start in starts]
    groups = [{"params": [p], "lr": lr} for row in params for p, lr in zip(row, lrs)]
    opt = kind(groups, **settings)
    shape = (len(starts), len(lrs))
    points = np.empty((*shape, steps + 1, 2))
    losses = np.empty((*shape, steps + 1))
    for t in range(steps + 1):
        stacked = torch.stack([p for row in params for p in row])  # (S * L, 2)
        loss = surface.loss(stacked)
        points[..., t, :] = stacked.detach().reshape(*shape, 2).numpy()
        losses[..., t] = loss.detach().reshape(shape).numpy()
        if t == steps:
            break
        opt.zero_grad()
        loss.sum().backward()  # each pair's gradient is its own: the losses do not mix
        opt.step()
    return Paths(optimizer, tuple(lrs), points, losses)


def starts_for(surface: Surface, seeds: Sequence[int], jitter: float) -> Tensor:
    """``(len(seeds), 2)``: the surface's start, moved by a normal offset of std ``jitter`` drawn from each seed."""
    offsets = [torch.randn(2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) for seed in seeds]
    return torch.tensor(surface.start, dtype=torch.float64) + jitter * torch.stack(offsets)
