"""The output channels of one conv layer for a fixed set of inputs, as training goes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor, nn

from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures._images import as_image
from dlbasics.callbacks.figures.base import FigureCallback, forward_eval, is_due, split_batch
from dlbasics.checks import check_int
from dlbasics.figures import new_figure, publish_figure


def conv_layers(model: nn.Module) -> list[str]:
    """Qualified names of the ``nn.Conv2d`` modules of ``model``, in ``named_modules()`` order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


class FeatureMaps(FigureCallback):
    """Draw a layer's feature maps (output channels) for a fixed set of inputs; works with any LightningModule.

    The layer is found through ``named_modules()``: ``layer`` by its qualified name (any module whose output
    is ``(B, C, H, W)``), by default the first ``nn.Conv2d``; the error for a wrong name lists the conv layers.
    The inputs are the first ``n_inputs`` of the validation (or, in a test run, the test) split, as the model
    receives them, gathered across DDP ranks in split order; they are fixed at first use and reused after.
    The maps are captured by a forward hook on the layer that exists only while ``forward`` runs on those inputs
    (eval mode, no gradients, modes restored after).

    The grid has one row per input: the input (min-max scaled) then its first ``max_maps`` channels, each with
    its own colour scale (viridis: dark low, yellow high). Drawn after validation every ``every_n_epochs``
    epochs (not the sanity check) and after each test run, as TensorBoard image ``feature_maps/<layer>`` at the
    global step and ``figures/feature_maps_<layer>_epoch<NNN>.png``; a test (or validate) run's image goes under
    its own tag ``feature_maps/test/<layer>`` (``feature_maps/val/<layer>``), as it has the last training epoch's
    step, and to ``..._test.png``.

    In memory: ``inputs`` (N, ...) on the CPU, ``maps``, the latest ``(N, channels, H, W)`` captured output
    (all channels), and ``history``, one entry per figure ``{"epoch", "step", "stage", "layer"}``.

    Args:
        layer: qualified module name as in ``named_modules()``, e.g. ``network.features.0``; None picks the
            first ``nn.Conv2d``.
        n_inputs: number of inputs (rows).
        max_maps: at most this many channels per input (columns after the input).
        every_n_epochs: draw every this many epochs while fitting.
    """

    def __init__(self, layer: str | None = None, n_inputs: int = 8, max_maps: int = 16,
                 every_n_epochs: int = 1) -> None:
        super().__init__()
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ValueError(f"layer {layer!r} must be a module name such as 'network.features.0', or None")
        self.layer = layer
        self.n_inputs = check_int(n_inputs, "n_inputs")
        self.max_maps = check_int(max_maps, "max_maps")
        self.every_n_epochs = check_int(every_n_epochs, "every_n_epochs")
        self.inputs: Tensor | None = None
        self.maps: Tensor | None = None
        self.history: list[dict[str, Any]] = []
        self.layer_name = layer or ""  # the resolved name once set up
        self._module: nn.Module | None = None
        self._collector = Collector(limit=n_inputs)

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse, before the run folder exists, a ``layer`` that ``pl_module`` does not have."""
        self._find_layer(pl_module)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Resolve the layer before anything runs, so a wrong name fails at once."""
        self.layer_name, self._module = self._find_layer(pl_module)

    def _find_layer(self, pl_module: LightningModule) -> tuple[str, nn.Module]:
        """The shown layer's qualified name and module; a ValueError that lists the conv layers if there is none."""
        modules = dict(pl_module.named_modules())
        convs = conv_layers(pl_module)
        if self.layer is None:
            if not convs:
                raise ValueError(f"FeatureMaps found no nn.Conv2d in {type(pl_module).__name__}; name the layer to "
                                 "show with `layer` (a name from named_modules())")
            return convs[0], modules[convs[0]]
        if self.layer not in modules:
            raise ValueError(f"FeatureMaps layer {self.layer!r} is not a module of {type(pl_module).__name__}; its "
                             f"conv layers are: {', '.join(convs) or 'none'}")
        return self.layer, modules[self.layer]

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "train" and self.inputs is None and not trainer.sanity_checking:
            self._collector.reset()

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        if stage != "train" and self.inputs is None and not trainer.sanity_checking:
            x, _ = split_batch(batch, "FeatureMaps")
            self._collector.add(trainer, {"x": x})

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "train" or trainer.sanity_checking:
            return
        if self.inputs is None:
            gathered = self._collector.gather(trainer)  # collective: every rank
            if not gathered:
                return
            self.inputs = gathered["x"]
        if is_due(trainer, self.every_n_epochs):  # always in test runs
            self._draw(trainer, pl_module, stage)

    def capture(self, pl_module: LightningModule, inputs: Tensor) -> Tensor:
        """The layer's output ``(N, C, H, W)`` for ``inputs``, on the CPU; the hook lives only during the call."""
        captured: list[Tensor] = []
        handle = self._module.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            forward_eval(pl_module, inputs)
        finally:
            handle.remove()
        output = captured[0] if captured else None  # the first call, if forward uses the layer more than once
        if not isinstance(output, Tensor) or output.dim() != 4:
            got = "no call" if not captured else tuple(output.shape) if isinstance(output, Tensor) else type(output)
            raise ValueError(f"FeatureMaps layer {self.layer_name!r} must output (batch, channels, height, width) "
                             f"when forward runs, got {got}")
        return output.detach().float().cpu()

    def _draw(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Capture (every rank: cheap, and safe with sharded models), draw on rank zero."""
        self.maps = self.capture(pl_module, self.inputs)
        fitting = trainer.state.fn == "fit"
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "stage": stage,
                             "layer": self.layer_name})
        if trainer.is_global_zero:
            when = f"epoch {trainer.current_epoch}" if fitting else stage
            fig = maps_figure(self.inputs, self.maps, self.max_maps, f"Feature maps of {self.layer_name}, {when}")
            suffix = f"epoch{trainer.current_epoch:03d}" if fitting else stage
            tag = f"feature_maps/{self.layer_name}" if fitting else f"feature_maps/{stage}/{self.layer_name}"
            publish_figure(trainer, fig, tag, f"feature_maps_{self.layer_name}_{suffix}")


def maps_figure(inputs: Tensor, maps: Tensor, max_maps: int, title: str) -> Figure:
    """One row per input: the input, then its first ``max_maps`` channels, each with its own colour scale.

    Drawn as one mosaic image on one axes, not an axes per panel: a grid of small axes is far slower to draw
    (benchmarks/RESULTS.md, "Measurements quoted from the code").

    Args:
        inputs: (N, ...) the inputs.
        maps: (N, C, H, W) the layer's output for them.
        max_maps: channels shown per row at most.
        title: the figure title.
    """
    n, channels, h, w = maps.shape
    shown = min(channels, max_maps)
    tiles = maps[:, :shown].float()
    low, high = tiles.amin(dim=(2, 3), keepdim=True), tiles.amax(dim=(2, 3), keepdim=True)
    scaled = torch.where(high > low, (tiles - low) / (high - low).clamp(min=1e-12), 0.0)  # each map 0..1
    colours = colormaps["viridis"](scaled.numpy())[..., :3]  # (N, shown, H, W, 3)
    gap = max(1, h // 10)
    cell_h, cell_w = h + gap, w + gap
    mosaic = np.ones((n * cell_h - gap, (shown + 1) * cell_w - gap, 3))  # white gaps; column 0 holds the inputs
    for i in range(n):
        for c in range(shown):
            mosaic[i * cell_h:i * cell_h + h, (c + 1) * cell_w:(c + 1) * cell_w + w] = colours[i, c]
    fig = new_figure(0.6 * (shown + 1) + 0.4, 0.6 * n + 0.7)
    fig.suptitle(f"{title} ({shown} of {channels} channels)", fontsize=10)
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest", extent=(0, mosaic.shape[1], mosaic.shape[0], 0))
    for i in range(n):  # inputs keep their own resolution, stretched to a tile
        image = as_image(inputs[i])
        if image is not None:
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                      extent=(0, w, i * cell_h + h, i * cell_h))
    ax.set_xlim(0, mosaic.shape[1])
    ax.set_ylim(mosaic.shape[0], 0)
    ax.set_xticks([c * cell_w + w / 2 for c in range(shown + 1)], ["input"] + [f"ch {c}" for c in range(shown)],
                  fontsize=7, rotation=90)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    return fig
