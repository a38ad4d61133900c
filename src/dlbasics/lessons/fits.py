"""A trained 1-D regressor's fit, from its run: the data of ``fit_figure``, and how smooth the fitted curve is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from dlbasics.callbacks.figures import fit_figure
from dlbasics.callbacks.figures.base import forward_eval
from dlbasics.lessons.plots import band, caption
from dlbasics.lessons.runner import RunResult, SeedRuns, stack

RESOLUTION = 300


def fit_data(result: RunResult, resolution: int = RESOLUTION) -> dict[str, Tensor | None]:
    """The trained model's curve over the data's x range (eval mode), its training and validation points and the
    true function, as ``RegressionFit.last`` holds them for ``fit_figure``."""
    data = result.data
    (train_x, train_y), (eval_x, eval_y) = data.split("train"), data.split("val")
    xs = torch.cat([train_x, eval_x]).reshape(-1)
    grid = torch.linspace(float(xs.min()), float(xs.max()), resolution).reshape(-1, 1)
    truth = getattr(data, "true_function", None)
    return {"grid_x": grid.reshape(-1), "pred": forward_eval(result.model, grid).reshape(-1).cpu(),
            "true_y": truth(grid).reshape(-1) if callable(truth) else None,
            "train_x": train_x.reshape(-1), "train_y": train_y.reshape(-1),
            "eval_x": eval_x.reshape(-1) if len(eval_x) else None, "eval_y": eval_y.reshape(-1) if len(eval_x) else None}


def roughness(result: RunResult, resolution: int = RESOLUTION) -> float:
    """Mean squared second difference of the fitted curve on an even grid, scaled to a unit step: how much the
    curve bends. A fit that chases noise bends far more than the true function does."""
    pred = fit_data(result, resolution)["pred"].double().numpy()
    step = 1.0 / (resolution - 1)
    return float(np.mean((np.diff(pred, n=2) / step**2) ** 2))


def seed_curves(runs: Sequence[SeedRuns]) -> tuple[dict[str, Tensor | None], dict[str, np.ndarray]]:
    """The first run's first seed's fit data (its points and truth), and each run's fitted curves ``(seeds, R)``."""
    first = fit_data(runs[0].first)
    curves = {r.name: stack([fit_data(result)["pred"].tolist() for result in r.results]) for r in runs}
    return first, curves


def fits_figure(runs: Sequence[SeedRuns], title: str) -> Figure:
    """Each run's fitted curve (mean over seeds, with its 95% band) over the first seed's points and the truth."""
    data, curves = seed_curves(runs)
    means = {name: np.nanmean(c, axis=0) for name, c in curves.items()}
    fig = fit_figure(data, title, curves=means)
    ax = fig.axes[0]
    colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
    seeds = set()
    for name, c in curves.items():
        if band(ax, data["grid_x"].numpy(), c, colors[name]):
            seeds.add(c.shape[0])
    caption(fig, seeds)
    return fig
