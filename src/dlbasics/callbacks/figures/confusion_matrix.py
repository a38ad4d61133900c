"""The confusion matrix of a classifier on the validation or test set, counted across every DDP rank."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from dlbasics.callbacks.figures.base import FigureCallback, forward_eval, run_tag, split_batch
from dlbasics.checks import check_choice
from dlbasics.figures import new_figure, publish_figure

NORMALIZE = ("none", "true", "pred", "all")


def normalize_matrix(matrix: Tensor, normalize: str) -> Tensor:
    """Counts divided by their row (``true``), column (``pred``) or overall (``all``) sums; 0 where a sum is 0."""
    counts = matrix.float()  # float32: exact for counts below 2**24, and MPS has no float64
    if normalize == "none":
        return counts
    total = {"true": counts.sum(1, keepdim=True), "pred": counts.sum(0, keepdim=True), "all": counts.sum()}[normalize]
    return torch.where(total > 0, counts / total.clamp(min=1), 0.0)


class ConfusionMatrix(FigureCallback):
    """Count (true class, predicted class) pairs over a whole validation or test run and draw the matrix.

    Works with any LightningModule whose ``forward(x)`` returns class scores ``(B, C)``. A callback receives
    only what ``*_step`` returned (often just the loss), so predictions come from an extra forward pass,
    ``pl_module(x).argmax(1)`` on each batch (in eval mode, without gradients). Counts are kept in a torchmetrics
    ``MulticlassConfusionMatrix`` on the module's device, synced across DDP ranks when the run ends, so every
    sample counts exactly once (evaluation shards are disjoint).

    At the end of each run of the stage (for ``val``: every validation epoch but the sanity check) the matrix
    is published as TensorBoard image ``confusion/<name>`` at the global step (``confusion/<name>/validate`` in a
    ``validate`` run, which has the fit's last step) and
    ``figures/confusion_matrix_<name>.png`` (``val``: ``..._epoch<NNN>.png``), ``<name>`` being the stage, with
    ``_normalized_<normalize>`` appended unless ``normalize`` is ``none``; rows are true classes,
    columns predicted, counts (or fractions) in the cells, title with the accuracy.

    In memory: ``matrix``, the latest ``(C, C)`` int64 counts (``matrix[true, pred]``, on the CPU, summing to
    the number of samples), ``normalized``, the values drawn (float64, equal to ``matrix`` for ``none``), and
    ``history``, one entry per run ``{"epoch", "step", "stage", "matrix", "accuracy"}``.

    Args:
        stage: ``val`` or ``test``.
        normalize: what the cells show: ``none`` (counts), ``true`` (each row sums to 1, i.e. recall per
            class), ``pred`` (each column sums to 1, precision) or ``all`` (the whole matrix sums to 1). In YAML
            quote it, ``normalize: "true"``: a bare ``true`` is a boolean.
        class_names: names of the classes, in class-index order; None labels them 0, 1, ... The number of
            classes is the width of the model's outputs and must match.
    """

    def __init__(self, stage: Literal["val", "test"] = "test",
                 normalize: Literal["none", "true", "pred", "all"] = "none",
                 class_names: list[str] | None = None) -> None:
        super().__init__()
        self.stage = check_choice(stage, "stage", ("val", "test"))
        if isinstance(normalize, bool):  # YAML's bare true/false
            raise ValueError(f"normalize {normalize!r} is a boolean; use one of the strings: {', '.join(NORMALIZE)}")
        self.normalize = check_choice(normalize, "normalize", NORMALIZE)
        if class_names is not None and len(class_names) < 2:
            raise ValueError(f"class_names {class_names!r} must name at least 2 classes (or be None)")
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.matrix: Tensor | None = None
        self.normalized: Tensor | None = None
        self.history: list[dict[str, Any]] = []
        self._metric: MulticlassConfusionMatrix | None = None

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == self.stage and self._metric is not None:
            self._metric.reset()

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        if stage != self.stage or trainer.sanity_checking:
            return
        x, y = split_batch(batch, "ConfusionMatrix")
        scores = forward_eval(pl_module, x)  # the extra forward pass: `outputs` of the step may be the loss only
        if scores.dim() != 2 or scores.shape[1] < 2:
            raise ValueError(f"ConfusionMatrix needs class scores of shape (batch, classes) from forward, got "
                             f"{tuple(scores.shape)}")
        n_classes = scores.shape[1]
        if self.class_names is not None and len(self.class_names) != n_classes:
            raise ValueError(f"class_names lists {len(self.class_names)} names but the model outputs "
                             f"{n_classes} class scores; give one name per class")
        if self._metric is None or self._metric.num_classes != n_classes or self._metric.device != scores.device:
            self._metric = MulticlassConfusionMatrix(num_classes=n_classes).to(scores.device)  # counts stay there
        self._metric.update(scores.argmax(1), y.to(scores.device))

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != self.stage or trainer.sanity_checking or self._metric is None:
            return
        self.matrix = self._metric.compute().long().cpu()  # collective under DDP: sums every rank's counts
        self.normalized = normalize_matrix(self.matrix, self.normalize)
        accuracy = float(self.matrix.diag().sum() / self.matrix.sum().clamp(min=1))
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "stage": stage,
                             "matrix": self.matrix, "accuracy": accuracy})
        if trainer.is_global_zero:
            names = self.class_names or [str(i) for i in range(len(self.matrix))]
            title = f"Confusion matrix, {stage} ({int(self.matrix.sum())} samples, accuracy {accuracy:.3f})"
            if trainer.state.fn == "fit":
                title += f", epoch {trainer.current_epoch}"
            fig = confusion_figure(self.normalized, names, self.normalize, title)
            name = stage if self.normalize == "none" else f"{stage}_normalized_{self.normalize}"
            suffix = f"_epoch{trainer.current_epoch:03d}" if trainer.state.fn == "fit" else ""
            tag = f"confusion/{name}{run_tag(trainer, stage)}"  # a validate run's: its own tag
            publish_figure(trainer, fig, tag, f"confusion_matrix_{name}{suffix}")


def confusion_figure(values: Tensor, class_names: list[str], normalize: str, title: str) -> Figure:
    """Heatmap of ``values[true, pred]`` with the value written in each cell.

    Args:
        values: (C, C) counts or fractions.
        class_names: tick labels, one per class.
        normalize: ``none`` writes integers, anything else fractions.
        title: the figure title.
    """
    n = len(class_names)
    size = min(max(4.5, 0.45 * n + 2.5), 14.0)
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    v = values.numpy()
    image = ax.imshow(v, cmap="Blues", vmin=0, vmax=max(float(v.max()), 1e-12))
    fig.colorbar(image, ax=ax, label="count" if normalize == "none" else f"fraction (normalized over {normalize})",
                 shrink=0.8)
    if n <= 30:  # beyond that the numbers would not fit
        threshold = v.max() / 2
        for (i, j), value in np.ndenumerate(v):
            text = f"{int(value)}" if normalize == "none" else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=12 if n <= 4 else 8 if n <= 12 else 6,
                    color="white" if value > threshold else "black")
    ax.set_xticks(range(n), class_names, rotation=45 if max(map(len, class_names)) > 3 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return fig
