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
from dlbasics.callbacks._logged_steps import epoch_step
from dlbasics.callbacks.diagnostics._activation_layers import (describe_activations, find_activations,
                                                                functional_activations, functional_hint,
                                                                preceding_unit_dims)
from dlbasics.callbacks.diagnostics._activation_stats_plots import (activations_over_time_figure,
                                                                    add_tensorboard_histogram)
from dlbasics.callbacks.diagnostics._activation_sums import HIST_RANGES, LayerSums, unit_keys
from dlbasics.callbacks.diagnostics._names import display_name, layer_labels, shortlist
from dlbasics.checks import check_int, check_int_in, check_pattern
from dlbasics.figures import publish_figure


class ActivationStats(Callback):
    """Per layer and epoch, statistics of the activation modules' outputs on training batches; works with any model.

    The layers are the registry activation modules (``dlbasics.activations``) found through ``named_modules()``
    when fit starts, filtered by ``kinds`` and ``pattern``. Forward hooks registered then are removed when fit
    ends; they compute on sampled training batches only, never during validation, testing or prediction. All
    sums stay on the training device; each epoch's end does one host transfer (an all-gather first under DDP, so
    the statistics cover every rank's batches).

    A *unit* is what the layer before the activation makes one of: a channel after a convolution or a
    batch/instance/group norm (dim 1 of ``(B, C, H, W)``, ``(B, C, L)``), a feature after a linear layer, layer
    norm, embedding or attention (the last dim of ``(B, F)``, ``(B, L, F)``, ``(L, B, F)``: a sequence position
    is never a unit). "Before" is the nearest such layer registered before the activation in ``named_modules()``;
    with none, outputs with 4 or more dims count channels (dim 1), others features (last dim). ``unit_dims``
    picks another dim per layer. An activation module called several times per batch (one instance reused, as in
    torchvision's ``Bottleneck``) has the units of each call, and an output whose unit count changes (a short
    last batch of a ``(L, B, F)`` model is not one) is counted as units of their own, never an error. Per layer
    and epoch:

    - ``mean``, ``std``: over all output values seen.
    - ``dead_frac`` (relu): fraction of units whose output was 0 for every value seen (pre-activation <= 0
      throughout): they get no gradient from any input. With it ``units``, how many units were judged, and
      ``unit_dim``, the output dim they are on.
    - ``negative_frac`` (leaky_relu, elu, gelu, silu): the same count, units never > 0; they are not dead (they
      still pass gradient), but would be dead ReLUs. With ``units`` and ``unit_dim`` as above.
    - ``saturated_frac`` (sigmoid, tanh): fraction of output values with sigmoid < 0.01 or > 0.99, |tanh| > 0.97.
    - a fixed-bin histogram of the values over a fixed range per activation (``HIST_RANGES``, or ``ranges``);
      of at most ``hist_max_values`` values per layer and sampled batch.

    Logged at each epoch's end (at the step of the model's own ``train/`` epoch metrics) as ``act/<layer>/<stat>``,
    ``<layer>`` a readable name with the qualified module name, ``act1 (net.1)``, ``act2 (net.3)``, ... in the
    order the modules are registered (``labels``;
    ``_names.layer_labels``; ``history`` keeps the module names), plus histograms
    ``act/<layer>/hist`` on TensorBoard loggers if asked; when training ends, the figure ``act/over_time``
    (``figures/activations_over_time.png``). ``history`` holds one entry per epoch::

        {"epoch": 3, "step": 4, "layers": {"net.layers.1": {"kind": "tanh", "mean": 0.01, "std": 0.52,
            "saturated_frac": 0.06, "hist": [40 counts], "hist_range": [-1.0, 1.0]}, ...}}

    A layer swapped by ``ActivationSwap`` is still watched and reported under its new kind. Layer names leave
    out ``torch.compile``'s ``_orig_mod``. Refused before the run (``check_before_run``): ``kinds`` and
    ``pattern`` that select no activation module, including models whose activations are all functions
    (``torch.relu(x)`` in ``forward``, which no hook can see), and ``unit_dims`` entries that match no watched
    layer.

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
        unit_dims: the output dim that holds a layer's units, by regular expression searched in its name, e.g.
            ``{"conv1d_block": 1}`` for the channels of a ``Conv1d`` block's ``(B, C, L)`` outputs, or
            ``{"": -1}`` for the last dim of every layer; the first matching entry wins, the other layers follow
            the rule above. None: the rule for every layer.
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
        unit_dims: dict[str, int] | None = None,
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
        self.unit_dims = dict(unit_dims or {})
        self._unit_regexes = [(check_pattern(key, "unit_dims key"), check_int_in(dim, f"unit_dims[{key!r}]", -8, 8))
                              for key, dim in self.unit_dims.items()]  # fmt: skip
        self._calls: dict[str, int] = {}  # calls of each watched module in the sampled batch so far
        self.history: list[dict[str, Any]] = []
        self.labels: dict[str, str] = {}  # module name -> its name in TensorBoard and the figure
        self._sums: dict[str, LayerSums] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._sampling = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(kinds=self.kinds, pattern=self.pattern)

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse, before the run folder exists, ``kinds`` and ``pattern`` that select no layer of ``pl_module`` and
        ``unit_dims`` entries that match none of the selected layers."""
        self._choose(pl_module)

    def _choose(self, pl_module: LightningModule) -> list[tuple[str, str, nn.Module]]:
        """The watched ``(real name, shown name, module)``; a ValueError listing the activations if there are none."""
        found = find_activations(pl_module)
        chosen = [(name, display_name(name), module) for name, module, kind in found
                  if kind in self.kinds and (self._regex is None or self._regex.search(display_name(name)))]
        if not chosen:
            hint = f" {functional_hint(pl_module)}" if not found or functional_activations(pl_module) else ""
            raise ValueError(
                f"ActivationStats found no activation of kinds {self.kinds} matching pattern {self.pattern!r} in "
                f"{type(pl_module).__name__}; its activations are: "
                f"{describe_activations({name: kind for name, _, kind in found})}. Change `kinds` or `pattern`.{hint}"
            )
        for (regex, _), key in zip(self._unit_regexes, self.unit_dims):
            if not any(regex.search(shown) for _, shown, _ in chosen):
                raise ValueError(f"ActivationStats unit_dims key {key!r} matches none of the watched layers: "
                                 f"{shortlist([shown for _, shown, _ in chosen])}; change or remove it")
        return chosen

    def _unit_dim(self, shown: str, rule: int | None) -> int | None:
        """The dim of the first ``unit_dims`` entry matching ``shown``, else the layer-kind rule's."""
        return next((dim for regex, dim in self._unit_regexes if regex.search(shown)), rule)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        chosen = self._choose(pl_module)
        self._remove_hooks()
        rules = preceding_unit_dims(pl_module, [name for name, _, _ in chosen])
        self._sums = {shown: LayerSums(shown, self.bins, self.hist_max_values, self._unit_dim(shown, rules[name]))
                      for name, shown, _ in chosen}  # fmt: skip
        self._calls = dict.fromkeys(self._sums, 0)
        self.labels = layer_labels(list(self._sums), ["act"] * len(self._sums))
        self._handles = [module.register_forward_hook(partial(self._hook, shown)) for _, shown, module in chosen]
        if self.log_histograms and not any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers):
            rank_zero_warn("ActivationStats(log_histograms=True) needs a TensorBoardLogger in Trainer(logger=...); "
                           "no histograms will be written")

    def _hook(self, name: str, module: nn.Module, inputs: Any, output: Any) -> None:
        if not self._sampling:
            return
        kind = activation_name(module)  # read per call: ActivationSwap may have replaced the module
        if kind is not None and isinstance(output, Tensor) and output.numel():
            call = self._calls[name]
            self._calls[name] = call + 1
            self._sums[name].add(output, kind, self.ranges[kind], call)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._sampling = batch_idx % self.every_n_batches == 0
        if self._sampling:
            self._calls = dict.fromkeys(self._calls, 0)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._sampling = False

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        active = {name: sums for name, sums in self._sums.items() if sums.seen}
        if not active:
            return
        keys = unit_keys(trainer, {name: sorted(sums.alive) for name, sums in active.items()})
        packed = torch.cat([sums.pack(keys[name]) for name, sums in active.items()])
        rows = trainer.strategy.all_gather(packed).reshape(trainer.world_size, -1).cpu().numpy()  # the one sync
        sizes = [sums.size(keys[name]) for name, sums in active.items()]
        chunks = np.split(rows, np.cumsum(sizes)[:-1], axis=1)
        layers = {name: sums.read(chunk) for (name, sums), chunk in zip(active.items(), chunks)}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "layers": layers})
        self._log(trainer, layers)

    def _log(self, trainer: Trainer, layers: dict[str, dict[str, Any]]) -> None:
        metrics = {f"act/{self.labels[name]}/{stat}": value for name, stats in layers.items()
                   for stat, value in stats.items() if isinstance(value, float)}  # fmt: skip
        step = epoch_step(trainer)  # where train/'s epoch metrics go
        for logger in trainer.loggers:  # loggers write on rank zero only
            logger.log_metrics(metrics, step=step)
            if self.log_histograms and isinstance(logger, TensorBoardLogger):
                for name, stats in layers.items():
                    add_tensorboard_histogram(logger, f"act/{self.labels[name]}/hist", stats, step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.plot and self.history and trainer.is_global_zero:
            fig = activations_over_time_figure(self.history, self.labels)
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

