"""Comparison figures shared by the lessons: panels of per-epoch lines, and sweeps."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from dlbasics.figures import new_figure
from dlbasics.lessons.runner import RunResult


def lines_figure(panels: dict[str, dict[str, Sequence[float]]], title: str, ylabel: str = "",
                 log_y: bool = False, marks: dict[int, str] | None = None) -> Figure:
    """One axes per panel, one line per series, epochs on x.

    Args:
        panels: ``{panel title: {line label: values per epoch}}``.
        title: figure title.
        ylabel: y-axis label (default: the panel title).
        log_y: log scale on y.
        marks: ``{epoch: label}`` vertical lines, e.g. an activation swap.
    """
    fig = new_figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, series) in zip(axes, panels.items()):
        for label, values in series.items():
            ax.plot(range(len(values)), values, label=label)
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
    return fig


def overlay_curves(results: Sequence[RunResult], metrics: Sequence[str], title: str, log_y: bool = False,
                   marks: dict[int, str] | None = None, one_panel: bool = False) -> Figure:
    """One panel per metric (e.g. ``["train/loss", "val/loss"]``), one line per run.

    With ``one_panel`` every run's metrics share one axes (lines "run: metric"), to show a train/val gap.
    """
    if one_panel:
        lines = {f"{r.name}: {m}": r.curves[m] for r in results for m in metrics if m in r.curves}
        panels = {" vs ".join(metrics): lines}
    else:
        panels = {metric: {r.name: r.curves[metric] for r in results if metric in r.curves} for metric in metrics}
    return lines_figure(panels, title, log_y=log_y, marks=marks)


def sweep_plot(xs: Sequence[float], series: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str,
               log_x: bool = False) -> Figure:
    """Final metric against a swept setting (e.g. test R^2 vs hidden width), one line per series."""
    fig = new_figure(5.5, 3.8)
    ax = fig.subplots()
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log_x:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
