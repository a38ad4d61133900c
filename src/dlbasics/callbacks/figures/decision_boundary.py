"""Class regions of a 2-D-input classifier over a grid, with a stage's points on top, as training goes."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from torch import Tensor

from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures.base import FigureCallback, forward_eval, is_due, points_needed, split_batch
from dlbasics.checks import check_choice, check_int, check_number
from dlbasics.figures import new_figure, publish_figure

STAGES = ("train", "val", "test")


def class_probabilities(outputs: Tensor) -> Tensor:
    """``(N, C)`` probabilities from forward outputs: softmax of ``(N, C)`` logits, sigmoid of one logit per row."""
    if outputs.dim() == 2 and outputs.shape[1] >= 2:
        return outputs.float().softmax(dim=1)
    if outputs.dim() == 1 or outputs.shape[1:] == (1,):
        p = outputs.float().reshape(-1, 1).sigmoid()
        return torch.cat([1 - p, p], dim=1)
    raise ValueError(f"DecisionBoundary needs class scores of shape (batch, classes) from forward, got "
                     f"{tuple(outputs.shape)}")


class DecisionBoundary(FigureCallback):
    """Draw the class regions of a classifier with 2-D inputs, and a stage's points coloured by their label.

    Works with any LightningModule whose ``forward(x)`` maps ``(B, 2)`` inputs to class scores ``(B, C)``
    (logits; ``(B, 1)`` is read as one binary logit). Regions are the argmax of the softmax over a
    ``resolution`` x ``resolution`` grid spanning the points plus ``padding``; with two classes the shading is
    p(class 1) and the p = 0.5 contour is drawn. Points the model gets wrong are ringed in black. The points are
    the inputs of the stage's batches as the model received them (after ``on_after_batch_transfer``), gathered
    from every DDP rank; accuracy in the title is that of the drawn model on them. The grid and the points are
    run through ``forward`` in eval mode without gradients, then the module's modes are restored.

    When: for ``val``, at the end of validation every ``every_n_epochs`` epochs (and of every ``validate``
    run); for ``train``, at the end of every ``every_n_epochs`` training epochs; for both, once more at the end
    of fit if the model changed since the last figure. For ``test``, at the end of each test run.
    Published with ``publish_figure`` as TensorBoard image ``boundary/<stage>`` at the global step (the image
    slider shows the boundary forming) and ``figures/decision_boundary_<stage>_epoch<NNN>.png``
    (``..._final.png`` at the end of fit; ``decision_boundary_<stage>.png`` in test and validate runs).

    In memory: ``history``, one entry per figure ``{"epoch", "step", "stage", "accuracy", "n_points"}``, and
    ``last``, the latest figure's data: ``grid_x`` (R,), ``grid_y`` (R,), ``probs`` (R, R, C) indexed
    ``[y, x, class]``, ``x`` (N, 2), ``y`` (N,), ``pred`` (N,).

    Args:
        every_n_epochs: draw every this many epochs while fitting.
        stage: whose points to draw: ``train``, ``val`` or ``test``.
        resolution: grid points along each axis.
        padding: margin added around the points' bounding box, in input units.
    """

    def __init__(self, every_n_epochs: int = 5, stage: Literal["train", "val", "test"] = "val",
                 resolution: int = 200, padding: float = 0.5) -> None:
        super().__init__()
        self.every_n_epochs = check_int(every_n_epochs, "every_n_epochs")
        self.stage = check_choice(stage, "stage", STAGES)
        self.resolution = check_int(resolution, "resolution", minimum=2)
        self.padding = check_number(padding, "padding", minimum=0.0)
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Tensor] = {}
        self._points = Collector()
        self._collecting = False  # whether this epoch's points are needed (`points_needed`)
        self._gathered: dict[str, Tensor] = {}
        self._drawn_step = -1

    # The stage's points, from the batches as the model saw them.
    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == self.stage:
            self._points.reset()
            self._collecting = points_needed(trainer, self.every_n_epochs, bool(self._gathered))

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        if stage != self.stage or not self._collecting:
            return
        x, y = split_batch(batch, "DecisionBoundary")
        if x.shape[1:] != (2,):
            raise ValueError(f"DecisionBoundary needs 2-D inputs of shape (batch, 2), but the {stage} batches have "
                             f"inputs of shape {tuple(x.shape)} (one input: {tuple(x.shape[1:])}); use it with "
                             "2-feature data such as MoonsDataModule or Toy2DDataModule")
        self._points.add(trainer, {"x": x, "y": y})

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != self.stage or not self._collecting:
            return
        gathered = self._points.gather(trainer)  # collective: every rank decided alike to collect
        if gathered:
            self._gathered = gathered
            if is_due(trainer, self.every_n_epochs):
                epoch = trainer.current_epoch
                if trainer.state.fn == "fit":
                    self._draw(trainer, pl_module, f"epoch {epoch}", f"_epoch{epoch:03d}")
                else:
                    self._draw(trainer, pl_module, f"{trainer.state.fn.value} run", "")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stage != "test" and self._gathered and self._drawn_step != trainer.global_step:
            self._draw(trainer, pl_module, "end of training", "_final")

    def _draw(self, trainer: Trainer, pl_module: LightningModule, when: str, suffix: str) -> None:
        """Predict on the grid and the points (every rank: cheap, and safe with sharded models), draw on rank zero."""
        x, y = self._gathered["x"].float(), self._gathered["y"]
        low = x.min(0).values - self.padding
        high = x.max(0).values + self.padding
        grid_x = torch.linspace(float(low[0]), float(high[0]), self.resolution)
        grid_y = torch.linspace(float(low[1]), float(high[1]), self.resolution)
        mesh_y, mesh_x = torch.meshgrid(grid_y, grid_x, indexing="ij")  # (R, R) each, rows follow y
        grid = torch.stack([mesh_x.reshape(-1), mesh_y.reshape(-1)], dim=1)  # (R * R, 2)
        probs = class_probabilities(forward_eval(pl_module, grid)).cpu().reshape(self.resolution, self.resolution, -1)
        pred = class_probabilities(forward_eval(pl_module, x)).argmax(1).cpu()
        accuracy = float((pred == y).float().mean())
        self.last = {"grid_x": grid_x, "grid_y": grid_y, "probs": probs, "x": x, "y": y, "pred": pred}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "stage": self.stage,
                             "accuracy": accuracy, "n_points": len(y)})
        self._drawn_step = trainer.global_step
        if trainer.is_global_zero:
            title = f"Decision boundary, {when}: {self.stage} accuracy {accuracy:.3f} ({len(y)} points)"
            fig = boundary_figure(grid_x, grid_y, probs, x, y, pred, title)
            publish_figure(trainer, fig, f"boundary/{self.stage}", f"decision_boundary_{self.stage}{suffix}")


def boundary_figure(grid_x: Tensor, grid_y: Tensor, probs: Tensor, x: Tensor, y: Tensor, pred: Tensor,
                    title: str) -> Figure:
    """Class regions (two classes: p(class 1) shading and the 0.5 contour) with the points coloured by label.

    Args:
        grid_x: (R,) grid coordinates along the first input feature.
        grid_y: (R,) along the second.
        probs: (R, R, C) class probabilities, indexed ``[y, x, class]``.
        x: (N, 2) points.
        y: (N,) their labels.
        pred: (N,) the model's predictions; wrong points are ringed.
        title: the figure title.
    """
    n_classes = probs.shape[-1]
    colors = ["tab:blue", "tab:red"] if n_classes == 2 else [f"C{i % 10}" for i in range(n_classes)]
    fig = new_figure(6.4, 5.2)
    ax = fig.add_subplot()
    gx, gy, p = grid_x.numpy(), grid_y.numpy(), probs.numpy()
    if n_classes == 2:
        shading = ax.contourf(gx, gy, p[..., 1], levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45)
        fig.colorbar(shading, ax=ax, label="p(class 1)")
        ax.contour(gx, gy, p[..., 1], levels=[0.5], colors="k", linewidths=1.5)
    else:
        regions = p.argmax(-1)
        ax.contourf(gx, gy, regions, levels=np.arange(n_classes + 1) - 0.5, cmap=ListedColormap(colors), alpha=0.3)
    xs, labels = x.numpy(), y.numpy()
    for label in range(n_classes):
        chosen = labels == label
        ax.scatter(xs[chosen, 0], xs[chosen, 1], s=14, color=colors[label], edgecolors="white", linewidths=0.4,
                   label=f"class {label}")
    wrong = labels != pred.numpy()
    if wrong.any():
        ax.scatter(xs[wrong, 0], xs[wrong, 1], s=32, facecolors="none", edgecolors="k", linewidths=0.6,
                   label=f"wrong ({int(wrong.sum())})")
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    return fig
