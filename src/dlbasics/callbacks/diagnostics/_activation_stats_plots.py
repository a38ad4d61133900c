"""Pictures of ActivationStats' fixed-bin histograms: the over-time figure and TensorBoard histograms."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure

from dlbasics.figures import new_figure


def activations_over_time_figure(history: list[dict[str, Any]], labels: dict[str, str] | None = None) -> Figure:
    """A "colorful dimension" plot, one panel per layer: epochs on x, activation value on y, color = log(1 + count).

    Args:
        history: ``ActivationStats.history``; every layer entry needs ``kind``, ``hist`` and ``hist_range``.
        labels: the panels' layer names (``ActivationStats.labels``); None: the module names.
    """
    layers = list(dict.fromkeys(name for entry in history for name in entry["layers"]))
    ncols = min(len(layers), 3)
    nrows = math.ceil(len(layers) / ncols)
    fig = new_figure(4.2 * ncols, 3.2 * nrows, layout="tight")  # drawn during training: the faster layout
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, layer in zip(axes, layers):
        entries = [(entry["epoch"], entry["layers"][layer]) for entry in history if layer in entry["layers"]]
        vmax = max(math.log1p(max(stats["hist"])) for _, stats in entries) or 1.0
        # One mesh per run of epochs with the same bin edges: a swapped layer changes its histogram range.
        for value_range, run in itertools.groupby(entries, key=lambda item: tuple(item[1]["hist_range"])):
            run = list(run)
            counts = np.array([stats["hist"] for _, stats in run]).T  # (bins, epochs in the run)
            x_edges = [epoch - 0.5 for epoch, _ in run] + [run[-1][0] + 0.5]
            y_edges = np.linspace(*value_range, counts.shape[0] + 1)
            mesh = ax.pcolormesh(x_edges, y_edges, np.log1p(counts), vmin=0.0, vmax=vmax, cmap="viridis")
        kinds = " -> ".join(dict.fromkeys(stats["kind"] for _, stats in entries))
        ax.set_title(f"{(labels or {}).get(layer, layer)}: {kinds}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("activation value")
        fig.colorbar(mesh, ax=ax, label="log(1 + count)")
    for ax in axes[len(layers) :]:
        ax.set_visible(False)
    fig.suptitle("Activations over time (training batches)")
    return fig


def add_tensorboard_histogram(logger: TensorBoardLogger, tag: str, stats: dict[str, Any], step: int) -> None:
    """Write the fixed-bin counts as a TensorBoard histogram, the raw values never leaving the device."""
    counts = np.asarray(stats["hist"])
    if counts.sum() == 0:
        return
    edges = np.linspace(*stats["hist_range"], len(counts) + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    filled = np.flatnonzero(counts)
    logger.experiment.add_histogram_raw(
        tag, min=edges[filled[0]], max=edges[filled[-1] + 1], num=int(counts.sum()),
        sum=float(counts @ centers), sum_squares=float(counts @ centers**2),
        bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(), global_step=step,
    )  # fmt: skip
