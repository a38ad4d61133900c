"""Class regions of a 2-D-input classifier over a grid, with a stage's points on top, as training goes."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from torch import Tensor

from dlbasics.callbacks.figures._plane import PlaneFigure, plane_grid
from dlbasics.callbacks.figures.base import forward_eval, png_name, run_tag
from dlbasics.figures import new_figure, publish_figure


def class_probabilities(outputs: Tensor) -> Tensor:
    """``(N, C)`` probabilities from forward outputs: softmax of ``(N, C)`` logits, sigmoid of one logit per row."""
    if outputs.dim() == 2 and outputs.shape[1] >= 2:
        return outputs.float().softmax(dim=1)
    if outputs.dim() == 1 or outputs.shape[1:] == (1,):
        p = outputs.float().reshape(-1, 1).sigmoid()
        return torch.cat([1 - p, p], dim=1)
    raise ValueError(f"DecisionBoundary needs class scores of shape (batch, classes) from forward, got "
                     f"{tuple(outputs.shape)}")


class DecisionBoundary(PlaneFigure):
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
    slider shows the boundary forming; a ``validate`` run's as ``boundary/val/validate``, so no two images share
    a tag and a step) and ``figures/decision_boundary_<stage>_epoch<NNN>.png`` (``..._final.png`` at the end of
    fit; ``decision_boundary_<stage>.png`` in test and validate runs, and for every figure with ``pngs="last"``).

    In memory: ``history``, one entry per figure ``{"epoch", "step", "stage", "accuracy", "n_points"}``, and
    ``last``, the latest figure's data: ``grid_x`` (R,), ``grid_y`` (R,), ``probs`` (R, R, C) indexed
    ``[y, x, class]``, ``x`` (N, 2), ``y`` (N,), ``pred`` (N,).

    Args:
        every_n_epochs: draw every this many epochs while fitting.
        stage: whose points to draw: ``train``, ``val`` or ``test``.
        resolution: grid points along each axis.
        padding: margin added around the points' bounding box, in input units.
        figures_per_fit: if given, draw about this many figures over the fit instead (every ``max_epochs //
            figures_per_fit`` epochs), whatever the epoch budget.
        pngs: ``every``: a PNG file per figure; ``last``: one PNG file, overwritten by each figure (TensorBoard
            still gets every figure).
    """

    who = "DecisionBoundary"

    def __init__(self, every_n_epochs: int = 5, stage: Literal["train", "val", "test"] = "val",
                 resolution: int = 200, padding: float = 0.5, figures_per_fit: int | None = None,
                 pngs: Literal["every", "last"] = "every") -> None:
        super().__init__(every_n_epochs, stage, resolution, padding, figures_per_fit, pngs)
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Tensor] = {}

    def draw(self, trainer: Trainer, pl_module: LightningModule, when: str, suffix: str) -> None:
        """Predict on the grid and the points (every rank: cheap, and safe with sharded models), draw on rank zero."""
        x, y = self.points["x"], self.points["y"]
        grid_x, grid_y, grid = plane_grid(x, self.padding, self.resolution)
        probs = class_probabilities(forward_eval(pl_module, grid)).cpu().reshape(self.resolution, self.resolution, -1)
        pred = class_probabilities(forward_eval(pl_module, x)).argmax(1).cpu()
        accuracy = float((pred == y).float().mean())
        self.last = {"grid_x": grid_x, "grid_y": grid_y, "probs": probs, "x": x, "y": y, "pred": pred}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "stage": self.stage,
                             "accuracy": accuracy, "n_points": len(y)})
        if trainer.is_global_zero:
            title = f"Decision boundary, {when}: {self.stage} accuracy {accuracy:.3f} ({len(y)} points)"
            fig = boundary_figure(grid_x, grid_y, probs, x, y, pred, title)
            filename = png_name(self.pngs, f"decision_boundary_{self.stage}", suffix)
            publish_figure(trainer, fig, f"boundary/{self.stage}{run_tag(trainer, self.stage)}", filename)


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
    # Fixed margins, no layout engine, and an image rather than filled contours: drawn every few epochs while
    # training, this figure's cost is mostly layout and contour filling (about 0.25 s against 0.1 s without).
    fig = new_figure(5.6, 4.6, layout="none")
    fig.subplots_adjust(left=0.11, right=0.9 if n_classes == 2 else 0.97, bottom=0.1, top=0.93)  # colour bar
    ax = fig.add_subplot()
    gx, gy, p = grid_x.numpy(), grid_y.numpy(), probs.numpy()
    extent = (gx[0], gx[-1], gy[0], gy[-1])
    if n_classes == 2:
        shading = ax.imshow(p[..., 1], origin="lower", extent=extent, aspect="auto", cmap="RdBu_r", vmin=0, vmax=1,
                            alpha=0.45, interpolation="bilinear")
        fig.colorbar(shading, ax=ax, label="p(class 1)", fraction=0.05, pad=0.02, ticks=[0, 0.5, 1])
        ax.contour(gx, gy, p[..., 1], levels=[0.5], colors="k", linewidths=1.5)
    else:
        ax.imshow(p.argmax(-1), origin="lower", extent=extent, aspect="auto", cmap=ListedColormap(colors),
                  vmin=-0.5, vmax=n_classes - 0.5, alpha=0.3, interpolation="nearest")
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
    ax.locator_params(nbins=5)
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    return fig
