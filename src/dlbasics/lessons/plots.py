"""Comparison figures shared by the lessons: panels of per-epoch lines with bands across seeds, and sweeps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlbasics.figures import new_figure
from dlbasics.lessons.runner import SeedRuns
from dlbasics.lessons.stats import mean_band

BAND = "{mark}: mean over {n} seeds; {spread}: 95% t-interval of the mean"

Series = Sequence[float] | np.ndarray  # one value per epoch, or (seeds, epochs)


def lines_figure(panels: dict[str, dict[str, Series]], title: str, ylabel: str = "",
                 log_y: bool = False, marks: dict[int, str] | None = None) -> Figure:
    """One axes per panel, one line per series, epochs on x; a series of several seeds is its mean with a band.

    Args:
        panels: ``{panel title: {line label: values per epoch, or an array (seeds, epochs)}}``.
        title: figure title; the caption below says what the bands are, when there are any.
        ylabel: y-axis label (default: the panel title).
        log_y: log scale on y.
        marks: ``{epoch: label}`` vertical lines, e.g. an activation swap.
    """
    fig = new_figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    seeds = set()
    for ax, (panel, series) in zip(axes, panels.items()):
        for label, values in series.items():
            curves = np.atleast_2d(np.asarray(values, dtype=np.float64))
            mean = np.nanmean(curves, axis=0)
            (line,) = ax.plot(np.arange(mean.size), mean, label=label)
            if band(ax, np.arange(mean.size), curves, line.get_color(), positive=log_y):
                seeds.add(curves.shape[0])
        for epoch, text in (marks or {}).items():
            ax.axvline(epoch, color="grey", linestyle="--", linewidth=1)
            ax.annotate(text, (epoch, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8, color="grey")
        ax.set(xlabel="epoch", ylabel=ylabel or panel, title=panel)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    caption(fig, seeds)
    return fig


def band(ax: Axes, xs: np.ndarray, curves: np.ndarray, color: str, positive: bool = False) -> bool:
    """Shade the 95% t-interval of the mean of ``curves`` (seeds, points) around a line; False with one seed.

    With ``positive`` (a log axis, which can't show an interval reaching below 0) the band stops at the lowest seed.
    """
    if curves.shape[0] < 2:
        return False
    low, high = mean_band(curves)
    if positive:
        low = np.maximum(low, np.nanmin(curves, axis=0))
    ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
    return True


def caption(fig: Figure, seeds: set[int], mark: str = "line", spread: str = "band") -> None:
    """Say under the figure what its lines and bands are (or that it shows one seed)."""
    if seeds:
        text = BAND.format(mark=mark, n="/".join(map(str, sorted(seeds))), spread=spread)
    else:
        text = "one seed"
    fig.supxlabel(text, fontsize=8, color="dimgrey")


def overlay_curves(runs: Sequence[SeedRuns], metrics: Sequence[str], title: str, log_y: bool = False,
                   marks: dict[int, str] | None = None, one_panel: bool = False) -> Figure:
    """One panel per metric (e.g. ``["train/loss", "val/loss"]``), one line (with its seed band) per run.

    With ``one_panel`` every run's metrics share one axes (lines "run: metric"), to show a train/val gap.
    """
    if one_panel:
        lines = {f"{r.name}: {m}": r.curves(m) for r in runs for m in metrics if r.has(m)}
        panels = {" vs ".join(metrics): lines}
    else:
        panels = {metric: {r.name: r.curves(metric) for r in runs if r.has(metric)} for metric in metrics}
    return lines_figure(panels, title, log_y=log_y, marks=marks)


def sweep_plot(xs: Sequence[float], series: dict[str, Sequence[Sequence[float]]], title: str, xlabel: str,
               ylabel: str, log_x: bool = False) -> Figure:
    """Final metric against a swept setting (e.g. test R^2 vs hidden width): per point the mean over seeds with
    its 95% t-interval as an error bar.

    Args:
        series: ``{label: [per-seed values at xs[0], per-seed values at xs[1], ...]}``.
    """
    fig = new_figure(5.5, 3.9)
    ax = fig.subplots()
    seeds = set()
    for label, points in series.items():
        curves = np.asarray([list(p) for p in points], dtype=np.float64).T  # (seeds, points)
        mean = curves.mean(axis=0)
        low, high = mean_band(curves)
        ax.errorbar(xs, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=label)
        if curves.shape[0] > 1:
            seeds.add(curves.shape[0])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log_x:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    caption(fig, seeds, mark="point", spread="bar")
    return fig
