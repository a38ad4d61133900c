"""The fitted curve of a 1-D regressor against its training points and the true function, as training goes."""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor

from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures._plane import PNGS
from dlbasics.callbacks.figures.base import (FigureCallback, forward_eval, is_due, png_name, points_needed,
                                             split_batch, spread_every)
from dlbasics.checks import check_choice, check_int
from dlbasics.figures import new_figure, publish_figure

# Model curves: colours other than the points' blue, the truth's green and the evaluation points' grey.
MODEL_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def _one_column(t: Tensor, what: str) -> Tensor:
    """(N,) from (N,) or (N, 1); a ValueError for anything wider."""
    if t.dim() == 1 or t.shape[1:] == (1,):
        return t.reshape(-1).float()
    raise ValueError(f"RegressionFit needs 1-D regression: {what} of shape (batch,) or (batch, 1), got "
                     f"{tuple(t.shape)}")


class RegressionFit(FigureCallback):
    """Draw a 1-D regressor's prediction over the data's x range with the training points and the true function.

    Works with any LightningModule whose ``forward(x)`` maps ``(B, 1)`` inputs to ``(B, 1)`` predictions. The
    training points are the inputs and targets of the training batches as the model received them (gathered
    from every DDP rank, where padding may repeat a few), the evaluation points (drawn faintly) those of the
    last validation run. The model curve is ``forward`` on ``resolution`` points evenly spaced over the x
    range of all points, in eval mode without gradients (modes restored after). The true function is
    ``true_function``, else the datamodule's ``true_function(x)`` method if it has one (as ``SineDataModule``
    does), else none is drawn.

    Drawn every ``every_n_epochs`` training epochs and once more at the end of fit if the model changed since,
    as TensorBoard image ``regression/fit`` at the global step and ``figures/regression_fit_epoch<NNN>.png``
    (``regression_fit_final.png``; with ``pngs="last"`` one ``regression_fit.png``, overwritten by each figure).

    In memory: ``history``, one entry per figure ``{"epoch", "step", "train_mse", "eval_mse"}`` (``eval_mse``
    None without validation), and ``last``, the latest figure's data: ``grid_x`` and ``pred`` (R,), ``true_y``
    (R,) or None, ``train_x``, ``train_y``, ``eval_x``, ``eval_y`` (N,).

    Args:
        every_n_epochs: draw every this many training epochs.
        true_function: the function to draw as the truth, mapping ``(R, 1)`` inputs to ``(R, 1)`` targets (in
            YAML an import path such as ``torch.sin``); None uses the datamodule's ``true_function`` method if
            there is one.
        resolution: number of grid points of the model curve.
        figures_per_fit: if given, draw about this many figures over the fit instead (every ``max_epochs //
            figures_per_fit`` epochs), whatever the epoch budget.
        pngs: ``every``: a PNG file per figure; ``last``: one PNG file, overwritten by each figure (TensorBoard
            still gets every figure).
    """

    def __init__(self, every_n_epochs: int = 50, true_function: Callable | None = None,
                 resolution: int = 300, figures_per_fit: int | None = None,
                 pngs: Literal["every", "last"] = "every") -> None:
        super().__init__()
        self.every_n_epochs = check_int(every_n_epochs, "every_n_epochs")
        self.figures_per_fit = None if figures_per_fit is None else check_int(figures_per_fit, "figures_per_fit")
        self.pngs = check_choice(pngs, "pngs", PNGS)
        self._every = self.every_n_epochs  # the interval in use, set at setup (`spread_every`)
        if true_function is not None and not callable(true_function):
            raise ValueError(f"true_function {true_function!r} must be a function of x such as torch.sin, or None to "
                             "use the datamodule's true_function method")
        self.true_function, self.resolution = true_function, check_int(resolution, "resolution", minimum=2)
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Tensor | None] = {}
        self._collectors = {"train": Collector(), "val": Collector()}
        self._collecting = {"train": False, "val": False}  # whether this epoch's points are needed
        self._points: dict[str, dict[str, Tensor]] = {}  # the latest gathered points of each
        self._truth: Callable[[Tensor], Tensor] | None = None
        self._drawn_step = -1

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        method = getattr(trainer.datamodule, "true_function", None)
        truth = self.true_function if self.true_function is not None else method
        self._truth = truth if callable(truth) else None
        self._every = spread_every(trainer, self.every_n_epochs, self.figures_per_fit)

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage in self._collectors:
            self._collectors[stage].reset()
            self._collecting[stage] = trainer.state.fn == "fit" and points_needed(
                trainer, self._every, bool(self._points.get(stage)))

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        if self._collecting.get(stage):
            x, y = split_batch(batch, "RegressionFit")
            self._collectors[stage].add(trainer, {"x": _one_column(x, "inputs"), "y": _one_column(y, "targets")})

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self._collecting.get(stage):
            return
        self._points[stage] = self._collectors[stage].gather(trainer)  # collective: every rank
        if stage == "train" and is_due(trainer, self._every):  # the epoch's validation has run
            self._draw(trainer, pl_module, f"epoch {trainer.current_epoch}", f"_epoch{trainer.current_epoch:03d}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._points.get("train") and self._drawn_step != trainer.global_step:
            self._draw(trainer, pl_module, "end of training", "_final")

    def _predict(self, pl_module: LightningModule, x: Tensor) -> Tensor:
        return _one_column(forward_eval(pl_module, x.unsqueeze(1)), "forward outputs").cpu()

    def _draw(self, trainer: Trainer, pl_module: LightningModule, when: str, suffix: str) -> None:
        """Predict (every rank: cheap, and safe with sharded models), draw on rank zero."""
        train = self._points.get("train") or {}
        evaluation = self._points.get("val") or {}
        if not train:
            return
        xs = torch.cat([train["x"], evaluation["x"]]) if evaluation else train["x"]
        grid_x = torch.linspace(float(xs.min()), float(xs.max()), self.resolution)
        pred = self._predict(pl_module, grid_x)
        true_y = self._truth(grid_x.unsqueeze(1)).reshape(-1).float() if self._truth is not None else None
        mse = {name: float((self._predict(pl_module, p["x"]) - p["y"]).square().mean()) if p else None
               for name, p in (("train", train), ("eval", evaluation))}
        self.last = {"grid_x": grid_x, "pred": pred, "true_y": true_y, "train_x": train["x"], "train_y": train["y"],
                     "eval_x": evaluation.get("x"), "eval_y": evaluation.get("y")}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step,
                             "train_mse": mse["train"], "eval_mse": mse["eval"]})
        self._drawn_step = trainer.global_step
        if trainer.is_global_zero:
            scores = f"train MSE {mse['train']:.3g}" + (f", val MSE {mse['eval']:.3g}" if evaluation else "")
            fig = fit_figure(self.last, f"Regression fit, {when}: {scores}")
            publish_figure(trainer, fig, "regression/fit", png_name(self.pngs, "regression_fit", suffix))


def fit_figure(data: dict[str, Tensor | None], title: str, curves: dict[str, Tensor] | None = None) -> Figure:
    """Evaluation points (faint), training points, the true function (dashed) and the model's curve.

    Args:
        data: ``RegressionFit.last``.
        title: the figure title.
        curves: named predictions on ``data["grid_x"]`` (e.g. several runs' ``last["pred"]``) drawn instead of
            ``data["pred"]``; None draws ``data["pred"]`` as "model".
    """
    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    if data["eval_x"] is not None:
        ax.scatter(data["eval_x"], data["eval_y"], s=10, color="0.6", alpha=0.5, label="validation points")
    ax.scatter(data["train_x"], data["train_y"], s=28, color="tab:blue", edgecolors="white", linewidths=0.5,
               label="training points", zorder=3)
    if data["true_y"] is not None:
        ax.plot(data["grid_x"], data["true_y"], color="tab:green", linestyle="--", linewidth=1.5,
                label="true function")
    for (name, pred), color in zip((curves or {"model": data["pred"]}).items(), cycle(MODEL_COLORS)):
        ax.plot(data["grid_x"], pred, color=color, linewidth=2, label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
