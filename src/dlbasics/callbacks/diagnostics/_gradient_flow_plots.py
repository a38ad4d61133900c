"""Pictures for GradientFlowMonitor: per-layer gradient bars, a layers-by-epochs heatmap, gradient histograms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure

from dlbasics.figures import new_figure


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values as an array with zeros and non-finite entries as NaN, which log-scale plots leave out."""
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array) & (array > 0), array, np.nan)


def flow_figure(
    stats: Mapping[str, Mapping[str, float]], epoch: int, vanishing_threshold: float, exploding_threshold: float
) -> Figure:
    """Bars of mean and max |grad| per layer (input on the left), log y scale, thresholds as dashed lines.

    Args:
        stats: ``{layer: {"mean_abs": ..., "max_abs": ...}}`` in forward order (one epoch of the history).
        epoch: for the title.
        vanishing_threshold: drawn as a dashed line when it is near the bars.
        exploding_threshold: likewise.
    """
    layers = list(stats)
    mean_abs, max_abs = ([row[key] for row in stats.values()] for key in ("mean_abs", "max_abs"))
    # Drawn during training: the faster layout.
    fig = new_figure(max(6.0, 0.45 * len(layers) + 2.0), 4.0, layout="tight")
    ax = fig.add_subplot()
    x = np.arange(len(layers))
    ax.bar(x - 0.2, _positive(max_abs), width=0.4, label="max |grad|", color="tab:orange")
    ax.bar(x + 0.2, _positive(mean_abs), width=0.4, label="mean |grad|", color="tab:blue")
    ax.set_yscale("log")
    # Threshold lines only when they are near the data, so they do not squash the bars.
    shown = _positive(list(mean_abs) + list(max_abs))
    if np.isfinite(shown).any():
        low, high = np.nanmin(shown), np.nanmax(shown)
        for value, name in ((vanishing_threshold, "vanishing"), (exploding_threshold, "exploding")):
            if math.isfinite(value) and low / 100 <= value <= high * 100:
                ax.axhline(value, color="gray", linestyle="--", linewidth=1, label=f"{name} threshold")
    ax.set_xticks(x, layers, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layer (forward order)")
    ax.set_ylabel("|gradient| (epoch average)")
    ax.set_title(f"Gradient flow, epoch {epoch}")
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def heatmap_figure(curves: Mapping[str, Sequence[float]], epochs: Sequence[int]) -> Figure:
    """log10 mean |grad| of each layer (rows, input at the top) in each epoch (columns).

    Args:
        curves: ``{layer: [mean |grad| per epoch]}`` in forward order; zero or NaN cells are drawn blank.
        epochs: the column labels.
    """
    layers, mean_abs = list(curves), np.array(list(curves.values()), dtype=float)  # (layers, epochs)
    fig = new_figure(max(6.0, 0.2 * len(epochs) + 3.0), max(3.0, 0.3 * len(layers) + 1.5), layout="tight")
    ax = fig.add_subplot()
    logs = np.ma.masked_invalid(np.log10(_positive(mean_abs.ravel())).reshape(mean_abs.shape))
    image = ax.imshow(logs, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(np.arange(len(layers)), layers, fontsize=8)
    step = max(1, len(epochs) // 15)  # at most ~15 epoch labels
    ax.set_xticks(np.arange(len(epochs))[::step], [str(e) for e in epochs][::step])
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer (forward order)")
    ax.set_title("Gradient flow: log10 mean |grad|")
    fig.colorbar(image, ax=ax, label="log10 mean |grad|")
    return fig


def add_histograms(trainer: Trainer, grads: Mapping[str, torch.Tensor]) -> None:
    """Add a TensorBoard histogram ``grad/<layer>/hist`` per gradient, copying all of them to the host at once."""
    if not grads:
        return
    flat = torch.cat([g.detach().flatten().float() for g in grads.values()]).cpu()  # the one host sync
    for tag, values in zip(grads, flat.split([g.numel() for g in grads.values()])):
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_histogram(f"grad/{tag}/hist", values, global_step=trainer.global_step)
