"""Per-layer gradient statistics for any LightningModule: scalars, gradient-flow figures and warnings."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from dlbasics.callbacks._logged_steps import batch_step, epoch_step
from dlbasics.callbacks.diagnostics._gradient_flow_plots import add_histograms, flow_figure, heatmap_figure
from dlbasics.callbacks.diagnostics._gradient_layers import ForwardOrder, Watched, choose_parameters, weight_norms
from dlbasics.callbacks.diagnostics._gradient_sums import STATS, GradientSums, flow_warning, step_rows
from dlbasics.callbacks.diagnostics._gradients import stored_values
from dlbasics.callbacks.diagnostics._names import layer_labels, module_kind
from dlbasics.callbacks.diagnostics._step_sampling import StepSampler
from dlbasics.checks import check_choice, check_int, check_pattern
from dlbasics.figures import publish_figure

MEASURE_AT = ("before_clipping", "after_clipping")


class GradientFlowWarning(UserWarning):
    """Some layers' gradients vanished or exploded during an epoch."""


class GradientFlowMonitor(Callback):
    """Log per-layer gradient statistics, draw gradient-flow figures and warn about vanishing/exploding layers.

    Works with any LightningModule: the layers are the parameters found through ``named_modules()``, by default
    every trainable weight (``weight``, attention's ``in_proj_weight``, ...: ``_gradient_layers.parameter_role``),
    in the order their modules first run in ``forward`` (a module whose weight is used without calling it,
    attention's ``out_proj``, at its parent's place). Measured: the parameters of the optimizer that steps, on one
    step in ``every_n_steps``; a parameter without a gradient is left out of that step. ``measure_at`` says when:

    - ``"before_clipping"`` (default): in ``on_before_optimizer_step``, gradients DDP-averaged and AMP-unscaled,
      before Lightning applies ``gradient_clip_val`` (it clips after that hook): what backward produced, so an
      explosion that clipping would hide still shows.
    - ``"after_clipping"``: once the optimizer has stepped (``register_step_post_hook``), the clipped gradients
      it applied; ``ratio`` still divides by the weights from before the step. A step the optimizer does not
      take (an AMP overflow step the scaler skips) is then not counted.

    Without clipping both agree; under manual optimization both see the user's own clipping. Per measured step
    and layer: ``mean_abs`` = mean |g|, ``l2`` = ||g||, ``max_abs`` = max |g|, ``ratio`` = ||g|| / ||w|| (inf if
    w = 0); over an interval, averaged (``max_abs``: the maximum). A step whose gradient is NaN/inf is counted in
    ``nonfinite_steps``, not averaged. Scalars ``grad/<layer>/<stat>`` are logged once per epoch and
    ``grad_step/<layer>/<stat>`` every ``log_every_n_steps`` optimizer steps, at the steps where Lightning logs
    the model's own ``train/`` metrics of that epoch or batch. ``<layer>`` is a readable name, numbered per module
    kind in forward order, with the parameter's name in brackets: ``linear1 (net.0)``, ``linear2 (net.2)``,
    ``conv2d1 (features.0)`` (``labels``; ``_names.layer_labels``). The parameter's name is without ``.weight``
    (and without ``torch.compile``'s ``_orig_mod``); the figures use the readable names, ``history`` and
    ``layers`` the parameter names. Refused before the run
    (``check_before_run``): a ``pattern`` that selects no parameter, with the list of those there are.

    ``history`` holds one entry per epoch, layers in forward order, values plain floats/ints::

        {"epoch": 0, "step": 30, "layers": {"net.0": {"mean_abs": 1e-4, "l2": 2e-3, "max_abs": 5e-4,
                                                        "ratio": 1e-3, "steps": 3, "nonfinite_steps": 0}, ...}}

    ``steps`` counts the measured steps averaged, ``nonfinite_steps`` those left out; ``series("mean_abs")`` gives
    ``{layer: [value per epoch]}``.

    Args:
        log_every_n_steps: also log the statistics averaged over every this many optimizer steps; None logs
            per epoch only.
        include_bias: watch the biases too (``bias``, ``in_proj_bias``, ``bias_k``, ...; as ``<module>.bias``).
        pattern: regular expression searched in the parameter names (e.g. ``"encoder"``); None keeps all.
        log_histograms: add TensorBoard histograms ``grad/<layer>/hist`` of the gradients of the step that
            closes each logging interval, if measured (with ``log_every_n_steps=None``, of each epoch's first).
        plot_every_n_epochs: draw the gradient-flow bar figure every this many epochs and a heatmap of all
            epochs when training ends; 0 draws nothing.
        vanishing_threshold: warn about a layer whose epoch mean |grad| is below this.
        exploding_threshold: warn about a layer whose epoch mean |grad| is above this or had NaN/inf gradients.
        include_other: watch the trainable parameters that are neither weights nor biases too (a ViT's
            ``class_token``, ``pos_embedding``), under their full names.
        measure_at: ``"before_clipping"`` or ``"after_clipping"``: the gradients before Lightning's
            ``gradient_clip_val`` applies, or those the optimizer stepped with (see above).
        every_n_steps: measure the optimizer steps whose index in the epoch (per optimizer) is a multiple of
            this, so each epoch's first step counts (full-batch training: every epoch). A measurement reads every
            watched gradient and weight, on the CPU up to 15% of a resnet18 step (``python -m
            benchmarks.callback_overhead``); None measures 1 step in 10, or every step when
            ``log_every_n_steps`` is set, as per-step curves need them.
    """

    def __init__(
        self,
        log_every_n_steps: int | None = None,
        include_bias: bool = False,
        pattern: str | None = None,
        log_histograms: bool = False,
        plot_every_n_epochs: int = 1,
        vanishing_threshold: float = 1e-7,
        exploding_threshold: float = 1e3,
        include_other: bool = False,
        measure_at: Literal["before_clipping", "after_clipping"] = "before_clipping",
        every_n_steps: int | None = None,
    ) -> None:
        if log_every_n_steps is not None:
            check_int(log_every_n_steps, "log_every_n_steps")
        if every_n_steps is not None:
            check_int(every_n_steps, "every_n_steps")
        self._every = every_n_steps or (10 if log_every_n_steps is None else 1)
        check_int(plot_every_n_epochs, "plot_every_n_epochs", minimum=0)  # 0 draws no figures
        if not (0 < vanishing_threshold < exploding_threshold) or not math.isfinite(vanishing_threshold):
            raise ValueError(
                f"thresholds must satisfy 0 < vanishing_threshold < exploding_threshold, got vanishing_threshold="
                f"{vanishing_threshold!r} and exploding_threshold={exploding_threshold!r}")
        self._regex = None if pattern is None else check_pattern(pattern)
        self.measure_at = check_choice(measure_at, "measure_at", MEASURE_AT)
        self.log_every_n_steps, self.every_n_steps, self.pattern = log_every_n_steps, every_n_steps, pattern
        self.include_bias, self.include_other = include_bias, include_other
        self.log_histograms, self.plot_every_n_epochs = log_histograms, plot_every_n_epochs
        self.vanishing_threshold, self.exploding_threshold = vanishing_threshold, exploding_threshold
        self.history: list[dict[str, Any]] = []
        self.layers: list[str] = []  # tags in forward order once the first training batch has run
        self.labels: dict[str, str] = {}  # tag -> its name in TensorBoard and the figures (layer_labels)
        self._kinds: dict[str, str] = {}  # tag -> the kind of its module (module_kind)
        self._tags: list[str] = []  # in selection order, as the parameters and the sums
        self._params: list[nn.Parameter] = []
        self._order: list[int] = []  # forward order as indices into the selection
        self._forward: ForwardOrder | None = None
        self._step_hooks: list[torch.utils.hooks.RemovableHandle] = []  # measure_at="after_clipping"
        self._pending: dict[int, tuple[list[int], list[Tensor]]] = {}  # id(optimizer) -> stepping, weight norms
        self._trainer: Trainer | None = None
        self._scratch: dict[tuple[torch.device, torch.dtype], Tensor] = {}  # for |g|, kept while fit runs
        self._histograms = log_histograms
        self._sampler = StepSampler(self._every)
        self._interval_steps = 0  # optimizer steps in this logging interval, measured or not

    @property
    def state_key(self) -> str:
        return self._generate_state_key(pattern=self.pattern, include_bias=self.include_bias)

    def series(self, stat: str = "mean_abs") -> dict[str, list[float]]:
        """``{layer: [stat in each epoch of history]}``, e.g. the mean |grad| curves of the lessons."""
        if stat not in STATS:
            raise ValueError(f"stat {stat!r} is not one of: {', '.join(STATS)}")
        layers = dict.fromkeys(name for entry in self.history for name in entry["layers"])
        return {name: [e["layers"].get(name, {}).get(stat, math.nan) for e in self.history] for name in layers}

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse, before the run folder exists, a ``pattern`` that selects no parameter of ``pl_module``."""
        self._choose(pl_module)

    def _choose(self, pl_module: LightningModule) -> list[Watched]:
        """The watched parameters; a ValueError that lists the trainable ones if there are none."""
        roles = ("weight",) + ("bias",) * self.include_bias + ("other",) * self.include_other
        chosen, available = choose_parameters(pl_module, roles, self._regex)
        if not chosen:
            raise ValueError(
                f"GradientFlowMonitor found no trainable {' or '.join(roles)} parameter matching pattern "
                f"{self.pattern!r}; the trainable parameters are: {', '.join(available) or 'none'}. "
                "Change `pattern` (a regex searched in these names), or set `include_bias` or `include_other`.")
        return chosen

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        chosen = self._choose(pl_module)
        self._remove_hooks()
        self._tags, self._params = [w.tag for w in chosen], [w.param for w in chosen]
        self._order = list(range(len(chosen)))
        self.layers = list(self._tags)
        modules = dict(pl_module.named_modules())
        self._kinds = {w.tag: module_kind(modules[w.owner]) for w in chosen}
        self.labels = self._label(self.layers)
        self._forward = ForwardOrder(pl_module, [w.owner for w in chosen])  # until the first batch has run
        self._trainer, self._pending = trainer, {}
        if self.measure_at == "after_clipping":
            self._step_hooks = [opt.register_step_post_hook(self._after_step) for opt in trainer.optimizers]
        device = self._params[0].device
        self._epoch = GradientSums(len(self._params), device)
        self._interval = GradientSums(len(self._params), device)
        self._one = torch.ones((), device=device)
        tensorboard = any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers)
        self._histograms = self.log_histograms and tensorboard and trainer.is_global_zero
        if self.log_histograms and not tensorboard:
            rank_zero_warn("GradientFlowMonitor(log_histograms=True) needs a TensorBoardLogger in Trainer(logger=...); "
                           "no histograms will be written.")

    def _remove_hooks(self) -> None:
        self._scratch = {}
        if self._forward is not None:
            self._forward.remove()
        for handle in self._step_hooks:
            handle.remove()
        self._step_hooks = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        self._interval_steps += 1
        if not self._sampler.measures(trainer, optimizer):
            return
        stepping = {id(p) for group in optimizer.param_groups for p in group["params"]}
        indices = [i for i, p in enumerate(self._params) if id(p) in stepping]
        norms = weight_norms([self._params[i] for i in indices])
        if self.measure_at == "before_clipping":
            self._measure(indices, norms)
        else:  # measured by _after_step, with the weights from before the step
            self._pending[id(optimizer)] = (indices, norms)

    def _after_step(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        pending = self._pending.pop(id(optimizer), None)
        if pending is not None:  # None: a step outside fit, or one on_before_optimizer_step did not see
            self._measure(*pending)

    def _measure(self, indices: list[int], w_norms: list[Tensor]) -> None:
        """Add one step's statistics of the parameters ``indices`` (the stepping ones) to the sums."""
        stats = step_rows(self._params, indices, w_norms, self._one, self._scratch)  # (L, 5) on the device, no sync
        every = self.log_every_n_steps  # histograms of the step that closes an interval (or opens an epoch)
        if self._histograms and (self._interval_steps == every if every else self._epoch.steps == 0):
            add_histograms(self._trainer, {self.labels[self._tags[i]]: stored_values(self._params[i].grad)
                                           for i in indices if self._params[i].grad is not None})
        self._epoch.add(stats)
        if self.log_every_n_steps is not None:
            self._interval.add(stats)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._forward is not None and self._forward.active:  # the first batch has run: layers in forward order
            self._order = self._forward.order()
            self.layers = [self._tags[i] for i in self._order]
            self.labels = self._label(self.layers)
        if self.log_every_n_steps is not None and self._interval_steps >= self.log_every_n_steps:
            self._interval_steps = 0
            # measured steps only: none, nothing logged; at the step train/'s on_step metrics of this batch get
            self._log("grad_step", self._interval.read(), trainer, batch_step(trainer))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._epoch.steps == 0:
            return
        epoch = trainer.current_epoch
        rows = self._epoch.read()
        self._log("grad", rows, trainer, epoch_step(trainer))  # where train/'s epoch metrics go
        layers = {self._tags[i]: rows[i] for i in self._order}
        self.history.append({"epoch": epoch, "step": trainer.global_step, "layers": layers})
        self._warn(epoch, layers)
        n = self.plot_every_n_epochs
        if n and (epoch + 1) % n == 0 and trainer.is_global_zero:
            fig = flow_figure(self.labelled(layers), epoch, self.vanishing_threshold, self.exploding_threshold)
            publish_figure(trainer, fig, "grad/flow", f"gradient_flow_epoch{epoch:03d}")

    def _log(self, prefix: str, rows: list[dict[str, float]], trainer: Trainer, step: int) -> None:
        # A layer with no finite gradient in the interval has NaN statistics: leave them out of the logger (the
        # warning and `history` say so) rather than draw NaN points in TensorBoard.
        metrics = {f"{prefix}/{self.labels[self._tags[i]]}/{stat}": rows[i][stat] for i in self._order
                   for stat in STATS if math.isfinite(rows[i][stat])}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def _label(self, tags: list[str]) -> dict[str, str]:
        return layer_labels(tags, [self._kinds[tag] for tag in tags])

    def labelled(self, by_tag: dict[str, Any]) -> dict[str, Any]:
        """``by_tag`` keyed by the names TensorBoard and the figures use (``labels``: ``linear1 (network.layers.0)``);
        a tag without a label keeps its own."""
        return {self.labels.get(tag, tag): value for tag, value in by_tag.items()}

    def _warn(self, epoch: int, layers: dict[str, dict[str, float]]) -> None:
        message = flow_warning(layers, self.vanishing_threshold, self.exploding_threshold)
        if message:
            rank_zero_warn(f"GradientFlowMonitor, epoch {epoch}: {message}", category=GradientFlowWarning)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()
        self._sampler = StepSampler(self._every)  # a later fit counts afresh (a resumed one loads the counts)
        if self.plot_every_n_epochs and self.history and trainer.is_global_zero:
            fig = heatmap_figure(self.labelled(self.series("mean_abs")), [e["epoch"] for e in self.history])
            publish_figure(trainer, fig, "grad/flow_heatmap", "gradient_flow_heatmap")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._remove_hooks()  # fit failed before the first step: leave the model as it was

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "sampling": self._sampler.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
        if "sampling" in state_dict:  # not in checkpoints written before sampling existed
            self._sampler.load_state_dict(state_dict["sampling"])
