"""Each hidden unit of a 2-D-input classifier as a map over the input plane, one grid per layer, as training goes."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import Tensor, nn

from dlbasics.callbacks.diagnostics._activation_layers import find_activations, functional_hint
from dlbasics.callbacks.diagnostics._names import display_name
from dlbasics.callbacks.figures._plane import PlaneFigure, plane_grid
from dlbasics.callbacks.figures.base import forward_eval, png_name
from dlbasics.checks import check_int
from dlbasics.figures import new_figure, publish_figure

COLUMNS = 8  # panels per row of a layer's grid
MAX_DOTS = 200  # points drawn per panel: more hide the map


class NeuronMaps(PlaneFigure):
    """Draw what each hidden unit of a classifier with 2-D inputs computes: its activation over the input plane.

    Works with any LightningModule whose ``forward`` takes ``(B, 2)`` inputs. The layers are the outputs of its
    activation modules (``nn.ReLU``, ``nn.Tanh``, ... as the activation registry knows them), found through
    ``named_modules()`` as ``ActivationStats`` finds them; a module that ``forward`` calls several times gives one
    layer per call (``<name>/call2``, ...). A ``resolution`` x ``resolution`` grid spanning the ``stage``'s points
    plus ``padding`` is run through ``forward`` once, in eval mode without gradients (modes restored after), with
    a forward hook on each activation that lives only during that call. Each unit (feature of a ``(B, F)`` output;
    wider outputs are flattened) becomes one small map: its activation at each grid point.

    One figure per layer: rows of up to 8 panels, the first ``max_units`` units, on one colour scale per layer (the
    layer's min to max, with a colour bar), the stage's points (200 at most) as dots if ``show_points``. Drawn as
    ``DecisionBoundary`` is (for ``train`` and ``val`` every ``every_n_epochs`` epochs and at the end of fit), as
    TensorBoard image ``neurons/<layer>`` at the global step (the slider shows the units forming) and
    ``figures/neurons_<layer>_epoch<NNN>.png`` (``neurons_<layer>.png`` with ``pngs="last"``).

    In memory: ``history``, one entry per figure ``{"epoch", "step", "stage", "units"}`` (``units``: layer ->
    how many it has), and ``last``: ``grid_x`` (R,), ``grid_y`` (R,), ``x`` (N, 2), ``y`` (N,), and ``maps``,
    layer -> ``(R, R, shown units)`` indexed ``[y, x, unit]``.

    Args:
        every_n_epochs: draw every this many epochs while fitting.
        stage: whose points set the plane's extent (and are drawn): ``train`` or ``val``.
        resolution: grid points along each axis of a panel.
        max_units: at most this many units (panels) per layer: the first ones.
        padding: margin added around the points' bounding box, in input units.
        show_points: draw the stage's points on every panel.
        figures_per_fit: if given, draw about this many figures over the fit instead (every ``max_epochs //
            figures_per_fit`` epochs), whatever the epoch budget.
        pngs: ``every``: a PNG file per figure; ``last``: one PNG file per layer, overwritten by each figure.
    """

    who = "NeuronMaps"

    def __init__(self, every_n_epochs: int = 5, stage: Literal["train", "val"] = "train", resolution: int = 40,
                 max_units: int = 16, padding: float = 0.5, show_points: bool = True,
                 figures_per_fit: int | None = None, pngs: Literal["every", "last"] = "every") -> None:
        if stage not in ("train", "val"):
            raise ValueError(f"NeuronMaps stage {stage!r} is not one of: train, val (its figures follow training)")
        super().__init__(every_n_epochs, stage, resolution, padding, figures_per_fit, pngs)
        self.max_units = check_int(max_units, "max_units")
        self.show_points = bool(show_points)
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse, before the run folder exists, a model without activation modules."""
        self._activations(pl_module)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._activations(pl_module)

    def _activations(self, pl_module: LightningModule) -> list[tuple[str, nn.Module]]:
        found = [(name, module) for name, module, _ in find_activations(pl_module)]
        if not found:
            raise ValueError(f"NeuronMaps found no activation modules (nn.ReLU, nn.Tanh, ...) in "
                             f"{type(pl_module).__name__}, so it has no hidden units to draw. "
                             f"{functional_hint(pl_module)}")
        return found

    def capture(self, pl_module: LightningModule, points: Tensor) -> dict[str, Tensor]:
        """Each layer's output for ``points`` (N, 2) as ``(N, units)`` on the CPU, in call order."""
        calls: list[tuple[str, Tensor]] = []
        handles = [module.register_forward_hook(lambda m, args, out, name=name: calls.append((name, out)))
                   for name, module in self._activations(pl_module)]
        try:
            forward_eval(pl_module, points)
        finally:
            for handle in handles:
                handle.remove()
        layers: dict[str, Tensor] = {}
        for name, out in calls:
            shown, k = display_name(name), 1
            while (key := shown if k == 1 else f"{shown}/call{k}") in layers:
                k += 1
            layers[key] = out.detach().float().cpu().reshape(len(points), -1)  # (N, units)
        return layers

    def draw(self, trainer: Trainer, pl_module: LightningModule, when: str, suffix: str) -> None:
        """Capture (every rank: cheap, and safe with sharded models), draw on rank zero."""
        x, y = self.points["x"], self.points["y"]
        r = self.resolution
        grid_x, grid_y, grid = plane_grid(x, self.padding, r)
        layers = self.capture(pl_module, grid)
        maps = {name: out[:, :self.max_units].reshape(r, r, -1) for name, out in layers.items()}
        self.last = {"grid_x": grid_x, "grid_y": grid_y, "x": x, "y": y, "maps": maps}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "stage": self.stage,
                             "units": {name: out.shape[1] for name, out in layers.items()}})
        if not trainer.is_global_zero:
            return
        extent = (float(grid_x[0]), float(grid_x[-1]), float(grid_y[0]), float(grid_y[-1]))
        points = (x, y) if self.show_points else None
        for name, panels in maps.items():
            title = f"Hidden units of {name}, {when} ({panels.shape[-1]} of {layers[name].shape[1]} units)"
            fig = units_figure(panels, extent, title, points)
            filename = png_name(self.pngs, f"neurons_{name.replace('/', '_')}", suffix)
            publish_figure(trainer, fig, f"neurons/{name}", filename)


def units_figure(maps: Tensor, extent: tuple[float, float, float, float], title: str,
                 points: tuple[Tensor, Tensor] | None = None) -> Figure:
    """Rows of small panels, one per unit, on one colour scale (with a colour bar), as one mosaic image.

    One image on one axes, not an axes per panel, as ``maps_figure`` draws feature maps: many small axes are far
    slower to draw.

    Args:
        maps: (R, R, U) each unit's values on the grid, indexed ``[y, x, unit]``.
        extent: ``(x min, x max, y min, y max)`` of the grid, for the points.
        title: the figure title.
        points: ``(x (N, 2), y (N,))``, the first 200 drawn as small dots on every panel (dark: class 0, light:
            others); None: none.
    """
    r, _, units = maps.shape
    columns = min(units, COLUMNS)
    rows = math.ceil(units / columns)
    values = maps.numpy()
    low, high = float(values.min()), float(values.max())
    norm = Normalize(low, high if high > low else low + 1)
    colours = colormaps["viridis"](norm(values))[..., :3]  # (R, R, U, 3)
    gap = max(1, r // 12)
    cell = r + gap
    mosaic = np.ones((rows * cell - gap, columns * cell - gap, 3))  # white gaps
    for u in range(units):
        top, left = (u // columns) * cell, (u % columns) * cell
        mosaic[top:top + r, left:left + r] = colours[::-1, :, u]  # flipped: y grows upwards in each panel
    fig = new_figure(0.9 * columns + 1.0, 0.9 * rows + 0.6, layout="tight")
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest", extent=(0, mosaic.shape[1], mosaic.shape[0], 0))
    if points is not None:
        x, y = points[0][:MAX_DOTS].numpy(), points[1][:MAX_DOTS].numpy()  # training points come shuffled
        px = (x[:, 0] - extent[0]) / (extent[1] - extent[0]) * r  # panel pixel coordinates, y upwards
        py = r - (x[:, 1] - extent[2]) / (extent[3] - extent[2]) * r
        offsets = np.array([((u % columns) * cell, (u // columns) * cell) for u in range(units)])  # (U, 2)
        dots_x = (offsets[:, None, 0] + px[None]).reshape(-1)
        dots_y = (offsets[:, None, 1] + py[None]).reshape(-1)
        shade = np.tile(np.where(y == 0, "black", "white"), units)
        ax.scatter(dots_x, dots_y, s=1, c=shade, linewidths=0, alpha=0.5)
    ax.set_xlim(0, mosaic.shape[1])
    ax.set_ylim(mosaic.shape[0], 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"units 0-{units - 1}, left to right and top to bottom; each panel: the unit's activation over the "
                  "input plane, x[0] across, x[1] up", fontsize=7)
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(ScalarMappable(norm, "viridis"), ax=ax, fraction=0.04, pad=0.02, format="%.2g")
    middle = (norm.vmin + norm.vmax) / 2
    middle = 0.0 if abs(middle) < 1e-3 * (norm.vmax - norm.vmin) else middle  # tanh's -6.6e-07 reads 0
    bar.set_ticks([norm.vmin, middle, norm.vmax])  # few ticks: text is most of the drawing
    bar.ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=8)
    return fig
