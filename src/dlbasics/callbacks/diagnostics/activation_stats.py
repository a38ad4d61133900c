"""Per-layer statistics of activation outputs for any LightningModule: mean, std, dead and saturated units."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from dlbasics.activations import ACTIVATIONS, activation_name, check_activation
from dlbasics.callbacks.diagnostics._activation_layers import describe_activations, find_activations
from dlbasics.callbacks.diagnostics._activation_stats_plots import (activations_over_time_figure,
                                                                    add_tensorboard_histogram)
from dlbasics.callbacks.diagnostics._activation_sums import HIST_RANGES, LayerSums
from dlbasics.checks import check_int, check_pattern
from dlbasics.figures import publish_figure


class ActivationStats(Callback):
    """Per layer and epoch, statistics of the activation modules' outputs on training batches; works with any model.

    The layers are the registry activation modules (``dlbasics.activations``) found through ``named_modules()``
    when fit starts, filtered by ``kinds`` and ``pattern``. Forward hooks registered then are removed when fit
    ends; they compute on sampled training batches only, never during validation, testing or prediction. All
    sums stay on the training device; each epoch's end does one host transfer (an all-gather first under DDP, so
    the statistics cover every rank's batches). Per layer and epoch, with a *unit* = one index along dim 1 (a
    feature of ``(B, F)``, a channel of ``(B, C, H, W)``):

    - ``mean``, ``std``: over all output values seen.
    - ``dead_frac`` (relu, leaky_relu, elu, gelu, silu): fraction of units whose output was never > 0 for any
      value seen, i.e. pre-activation <= 0 throughout (for relu: output exactly 0). The non-relu ones still pass
      a small gradient; the number shows the units that would be dead ReLUs.
    - ``saturated_frac`` (sigmoid, tanh): fraction of output values with sigmoid < 0.01 or > 0.99, |tanh| > 0.97.
    - a fixed-bin histogram of the values over a fixed range per activation (``HIST_RANGES``, or ``ranges``);
      of at most ``hist_max_values`` values per layer and sampled batch.

    Logged at each epoch's end as ``act/<layer>/<stat>``, ``<layer>`` the qualified module name, plus histograms
    ``act/<layer>/hist`` on TensorBoard loggers if asked; when training ends, the figure ``act/over_time``
    (``figures/activations_over_time.png``). ``history`` holds one entry per epoch::

        {"epoch": 3, "step": 4, "layers": {"net.layers.1": {"kind": "tanh", "mean": 0.01, "std": 0.52,
            "saturated_frac": 0.06, "hist": [40 counts], "hist_range": [-1.0, 1.0]}, ...}}

    A layer swapped by ``ActivationSwap`` is still watched and reported under its new kind.

    Args:
        kinds: registry names of the activations to watch; None watches all but ``identity``.
        pattern: regular expression searched in the qualified module names, e.g. ``"encoder"``; None keeps all.
        every_n_batches: compute on every n-th training batch of each epoch (``batch_idx % n == 0``; the first
            batch always counts, so full-batch training is measured every epoch). The statistics cost a few
            passes over every activation, a large share of a CNN's training step (``python -m benchmarks --only
            callbacks``), so the default samples one batch in 10; 1 measures every batch. Dead units are judged
            on the sampled batches.
        log_histograms: also add TensorBoard histograms ``act/<layer>/hist`` every epoch.
        bins: number of histogram bins.
        hist_max_values: the histogram counts at most this many values of a layer per sampled batch: whole
            examples, evenly spaced through the batch (every k-th). A histogram is a slow single pass on CPU, and
            its shape needs far fewer values than a conv layer puts out; mean, std, dead and saturated units
            always use every value. None counts every value.
        ranges: histogram ``[min, max]`` per registry name, replacing those ``HIST_RANGES`` gives, e.g.
            ``{relu: [0, 10]}``.
        plot: draw the activations-over-time figure when training ends.
    """

    def __init__(
        self,
        kinds: list[str] | None = None,
        pattern: str | None = None,
        every_n_batches: int = 10,
        log_histograms: bool = False,
        bins: int = 40,
        hist_max_values: int | None = 2**18,
        ranges: dict[str, tuple[float, float]] | None = None,
        plot: bool = True,
    ) -> None:
        super().__init__()
        kinds = [kind for kind in ACTIVATIONS if kind != "identity"] if kinds is None else list(kinds)
        self.kinds = [check_activation(kind, "kinds entry") for kind in kinds]
        self._regex = None if pattern is None else check_pattern(pattern)
        check_int(every_n_batches, "every_n_batches")
        check_int(bins, "bins")
        if hist_max_values is not None:
            check_int(hist_max_values, "hist_max_values")
        self.ranges = dict(HIST_RANGES)
        for kind, (low, high) in (ranges or {}).items():
            check_activation(kind, "ranges key")
            if not low < high:
                raise ValueError(f"ranges[{kind!r}] = [{low}, {high}] must have min < max")
            self.ranges[kind] = (float(low), float(high))
        self.pattern, self.every_n_batches, self.log_histograms = pattern, every_n_batches, log_histograms
        self.bins, self.hist_max_values, self.plot = bins, hist_max_values, plot
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, LayerSums] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._sampling = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(kinds=self.kinds, pattern=self.pattern)

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse, before the run folder exists, ``kinds`` and ``pattern`` that select no layer of ``pl_module``."""
        self._choose(pl_module)

    def _choose(self, pl_module: LightningModule) -> list[tuple[str, nn.Module]]:
        """The watched ``(qualified name, module)`` pairs; a ValueError that lists the activations if there are none."""
        found = find_activations(pl_module)
        chosen = [(name, module) for name, module, kind in found
                  if kind in self.kinds and (self._regex is None or self._regex.search(name))]  # fmt: skip
        if not chosen:
            raise ValueError(
                f"ActivationStats found no activation of kinds {self.kinds} matching pattern {self.pattern!r} in "
                f"{type(pl_module).__name__}; its activations are: "
                f"{describe_activations({name: kind for name, _, kind in found})}. Change `kinds` or `pattern`."
            )
        return chosen

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        chosen = self._choose(pl_module)
        self._remove_hooks()
        self._sums = {name: LayerSums(self.bins, self.hist_max_values) for name, _ in chosen}
        self._handles = [module.register_forward_hook(partial(self._hook, name)) for name, module in chosen]
        if self.log_histograms and not any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers):
            rank_zero_warn("ActivationStats(log_histograms=True) needs a TensorBoardLogger in Trainer(logger=...); "
                           "no histograms will be written")

    def _hook(self, name: str, module: nn.Module, inputs: Any, output: Any) -> None:
        kind = activation_name(module)  # read per call: ActivationSwap may have replaced the module
        if self._sampling and kind is not None and isinstance(output, Tensor) and output.numel():
            self._sums[name].add(output, kind, self.ranges[kind])

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._sampling = batch_idx % self.every_n_batches == 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._sampling = False

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        active = {name: sums for name, sums in self._sums.items() if sums.seen}
        if not active:
            return
        packed = torch.cat([sums.pack() for sums in active.values()])
        rows = trainer.strategy.all_gather(packed).reshape(trainer.world_size, -1).cpu().numpy()  # the one sync
        sizes = [6 + sums.alive.numel() + sums.bins for sums in active.values()]
        chunks = np.split(rows, np.cumsum(sizes)[:-1], axis=1)
        layers = {name: sums.read(chunk) for (name, sums), chunk in zip(active.items(), chunks)}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "layers": layers})
        self._log(trainer, layers)

    def _log(self, trainer: Trainer, layers: dict[str, dict[str, Any]]) -> None:
        metrics = {f"act/{name}/{stat}": value for name, stats in layers.items()
                   for stat, value in stats.items() if isinstance(value, float)}  # fmt: skip
        for logger in trainer.loggers:  # loggers write on rank zero only
            logger.log_metrics(metrics, step=trainer.global_step)
            if self.log_histograms and isinstance(logger, TensorBoardLogger):
                for name, stats in layers.items():
                    add_tensorboard_histogram(logger, f"act/{name}/hist", stats, trainer.global_step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.plot and self.history and trainer.is_global_zero:
            fig = activations_over_time_figure(self.history)
            publish_figure(trainer, fig, "act/over_time", "activations_over_time")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._remove_hooks()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._sampling = False

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}  # plain values: loads with torch.load(weights_only=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]

