"""What the figures over the input plane of a 2-D-input model share: a stage's points, when to draw, the grid."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor

from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures.base import FigureCallback, is_due, points_needed, split_batch, spread_every
from dlbasics.checks import check_choice, check_int, check_number

STAGES = ("train", "val", "test")
PNGS = ("every", "last")


def plane_grid(x: Tensor, padding: float, resolution: int) -> tuple[Tensor, Tensor, Tensor]:
    """``grid_x`` (R,), ``grid_y`` (R,) spanning the points ``x`` (N, 2) plus ``padding``, and the grid's points
    ``(R * R, 2)`` row by row (rows follow y), so ``values.reshape(R, R)`` is indexed ``[y, x]``."""
    low, high = x.min(0).values - padding, x.max(0).values + padding
    grid_x = torch.linspace(float(low[0]), float(high[0]), resolution)
    grid_y = torch.linspace(float(low[1]), float(high[1]), resolution)
    mesh_y, mesh_x = torch.meshgrid(grid_y, grid_x, indexing="ij")  # (R, R) each
    return grid_x, grid_y, torch.stack([mesh_x.reshape(-1), mesh_y.reshape(-1)], dim=1)


class PlaneFigure(FigureCallback):
    """The base of figures over the input plane of a model with 2-D inputs, drawn over a stage's points.

    Gathers the stage's points (inputs and targets of its batches as the model received them, from every DDP rank)
    in the epochs that need them, and calls ``draw(trainer, pl_module, when, suffix)`` (every rank) when a figure
    is due: for ``train`` and ``val`` every ``every_n_epochs`` epochs while fitting and once more at the end of fit
    if the model changed since; outside fitting (``validate``, ``test``) at the end of each run. ``points`` holds
    the latest gathered ``{"x": (N, 2), "y": (N,)}``. Subclasses set ``who`` (the name errors give).

    Args: those of ``DecisionBoundary`` (``every_n_epochs``, ``stage``, ``resolution``, ``padding``,
    ``figures_per_fit``, ``pngs``), documented there for ``--help``.
    """

    who = "PlaneFigure"

    def __init__(self, every_n_epochs: int = 5, stage: str = "val", resolution: int = 200, padding: float = 0.5,
                 figures_per_fit: int | None = None, pngs: str = "every") -> None:
        super().__init__()
        self.every_n_epochs = check_int(every_n_epochs, "every_n_epochs")
        self.stage = check_choice(stage, "stage", STAGES)
        self.resolution = check_int(resolution, "resolution", minimum=2)
        self.padding = check_number(padding, "padding", minimum=0.0)
        self.figures_per_fit = None if figures_per_fit is None else check_int(figures_per_fit, "figures_per_fit")
        self.pngs = check_choice(pngs, "pngs", PNGS)
        self.points: dict[str, Tensor] = {}
        self._every = self.every_n_epochs  # the interval in use, set at setup (`spread_every`)
        self._collector = Collector()
        self._collecting = False  # whether this epoch's points are needed (`points_needed`)
        self._drawn_step = -1

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._every = spread_every(trainer, self.every_n_epochs, self.figures_per_fit)

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == self.stage:
            self._collector.reset()
            self._collecting = points_needed(trainer, self._every, bool(self.points))

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        if stage != self.stage or not self._collecting:
            return
        x, y = split_batch(batch, self.who)
        if x.shape[1:] != (2,):
            raise ValueError(f"{self.who} needs 2-D inputs of shape (batch, 2), but the {stage} batches have "
                             f"inputs of shape {tuple(x.shape)} (one input: {tuple(x.shape[1:])}); use it with "
                             "2-feature data such as MoonsDataModule or Toy2DDataModule")
        self._collector.add(trainer, {"x": x, "y": y})

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != self.stage or not self._collecting:
            return
        gathered = self._collector.gather(trainer)  # collective: every rank decided alike to collect
        if gathered:
            self.points = {"x": gathered["x"].float(), "y": gathered["y"]}
            if is_due(trainer, self._every):
                epoch = trainer.current_epoch
                if trainer.state.fn == "fit":
                    self._draw_at(trainer, pl_module, f"epoch {epoch}", f"_epoch{epoch:03d}")
                else:
                    self._draw_at(trainer, pl_module, f"{trainer.state.fn.value} run", "")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stage != "test" and self.points and self._drawn_step != trainer.global_step:
            self._draw_at(trainer, pl_module, "end of training", "_final")

    def _draw_at(self, trainer: Trainer, pl_module: LightningModule, when: str, suffix: str) -> None:
        self._drawn_step = trainer.global_step
        self.draw(trainer, pl_module, when, suffix)

    def draw(self, trainer: Trainer, pl_module: LightningModule, when: str, suffix: str) -> None:
        """Draw and publish one figure of ``self.points`` (every rank calls it; only rank zero should publish)."""
        raise NotImplementedError
