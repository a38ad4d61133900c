"""Per-layer gradient statistics for any LightningModule: scalars, gradient-flow figures and warnings."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from dlbasics.callbacks.diagnostics._gradient_flow_plots import add_histograms, flow_figure, heatmap_figure
from dlbasics.callbacks.diagnostics._gradient_sums import STATS, GradientSums
from dlbasics.callbacks.diagnostics._gradients import stored_values
from dlbasics.checks import check_int, check_pattern
from dlbasics.figures import publish_figure

_TINY = torch.finfo(torch.float32).tiny


class GradientFlowWarning(UserWarning):
    """Some layers' gradients vanished or exploded during an epoch."""


class GradientFlowMonitor(Callback):
    """Log per-layer gradient statistics, draw gradient-flow figures and warn about vanishing/exploding layers.

    Works with any LightningModule: the layers are the parameters found through ``named_modules()``, by default
    every trainable ``weight``, shown in the order their modules first run in ``forward``. Statistics are taken
    in ``on_before_optimizer_step``, where gradients are final (DDP-averaged, AMP-unscaled), for the parameters
    of the optimizer that steps; a parameter without a gradient is left out of that step. Per step and layer:
    ``mean_abs`` = mean |g|, ``l2`` = ||g||, ``max_abs`` = max |g|, ``ratio`` = ||g|| / ||w|| (inf if w = 0).
    Over an interval the per-step values are averaged (``max_abs``: the maximum). A step whose gradient is
    NaN/inf (AMP overflow steps, which the scaler skips) is counted in ``nonfinite_steps``, not averaged.

    Scalars ``grad/<layer>/<stat>`` are logged once per epoch and ``grad_step/<layer>/<stat>`` every
    ``log_every_n_steps`` optimizer steps; ``<layer>`` is the parameter name without ``.weight``.

    ``history`` holds one entry per epoch, layers in forward order, values plain floats/ints::

        {"epoch": 0, "step": 30, "layers": {"net.0": {"mean_abs": 1e-4, "l2": 2e-3, "max_abs": 5e-4,
                                                        "ratio": 1e-3, "steps": 30, "nonfinite_steps": 0}, ...}}

    ``steps`` counts the steps averaged, ``nonfinite_steps`` those left out; ``series("mean_abs")`` gives
    ``{layer: [value per epoch]}``.

    Args:
        log_every_n_steps: also log the statistics averaged over every this many optimizer steps; None logs
            per epoch only.
        include_bias: watch the ``bias`` parameters too (as layers ``<module>.bias``).
        pattern: regular expression searched in the parameter names (e.g. ``"encoder"``); None keeps all.
        log_histograms: add TensorBoard histograms ``grad/<layer>/hist`` of the gradients of the step that
            closes each logging interval (with ``log_every_n_steps=None``, of each epoch's first step).
        plot_every_n_epochs: draw the gradient-flow bar figure every this many epochs and a heatmap of all
            epochs when training ends; 0 draws nothing.
        vanishing_threshold: warn about a layer whose epoch mean |grad| is below this.
        exploding_threshold: warn about a layer whose epoch mean |grad| is above this or had NaN/inf gradients.
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
    ) -> None:
        if log_every_n_steps is not None:
            check_int(log_every_n_steps, "log_every_n_steps")
        check_int(plot_every_n_epochs, "plot_every_n_epochs", minimum=0)  # 0 draws no figures
        if not (0 < vanishing_threshold < exploding_threshold) or not math.isfinite(vanishing_threshold):
            raise ValueError(
                f"thresholds must satisfy 0 < vanishing_threshold < exploding_threshold, got vanishing_threshold="
                f"{vanishing_threshold!r} and exploding_threshold={exploding_threshold!r}")
        self._regex = None if pattern is None else check_pattern(pattern)
        self.log_every_n_steps, self.include_bias, self.pattern = log_every_n_steps, include_bias, pattern
        self.log_histograms, self.plot_every_n_epochs = log_histograms, plot_every_n_epochs
        self.vanishing_threshold, self.exploding_threshold = vanishing_threshold, exploding_threshold
        self.history: list[dict[str, Any]] = []
        self.layers: list[str] = []  # tags in forward order once the first step has run
        self._params: list[nn.Parameter] = []
        self._owners: list[nn.Module] = []  # the module holding each parameter
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._first_call: dict[int, int] = {}  # id(module) -> rank of its first forward call
        self._histograms = log_histograms

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

    def _choose(self, pl_module: LightningModule) -> tuple[list[tuple[str, nn.Parameter]], list[nn.Module]]:
        """The watched ``(name, parameter)`` pairs and the module holding each; a ValueError if there are none."""
        kinds = ("weight", "bias") if self.include_bias else ("weight",)
        chosen, owners, available = [], [], []
        for module_name, module in pl_module.named_modules():
            for name, param in module.named_parameters(prefix=module_name, recurse=False):
                if not param.requires_grad or param.numel() == 0:
                    continue
                available.append(name)
                if name.rsplit(".", 1)[-1] in kinds and (self._regex is None or self._regex.search(name)):
                    chosen.append((name, param))
                    owners.append(module)
        if not chosen:
            raise ValueError(
                f"GradientFlowMonitor found no trainable {' or '.join(kinds)} parameter matching pattern "
                f"{self.pattern!r}; the trainable parameters are: {', '.join(available) or 'none'}. "
                "Change `pattern` (a regex searched in these names) or set `include_bias`.")
        return chosen, owners

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        chosen, owners = self._choose(pl_module)
        self.layers = [name.removesuffix(".weight") for name, _ in chosen]  # "net.0", "net.0.bias"
        self._params = [param for _, param in chosen]
        self._owners = owners
        # Record the order in which the owning modules first run, to show layers in forward order.
        self._first_call = {}
        self._hooks = [m.register_forward_pre_hook(partial(self._record_call, m)) for m in dict.fromkeys(owners)]
        device = self._params[0].device
        self._epoch = GradientSums(len(self._params), device)
        self._interval = GradientSums(len(self._params), device)
        self._row_missing = torch.zeros(5, device=device)
        self._one = torch.ones((), device=device)
        tensorboard = any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers)
        self._histograms = self.log_histograms and tensorboard and trainer.is_global_zero
        if self.log_histograms and not tensorboard:
            rank_zero_warn("GradientFlowMonitor(log_histograms=True) needs a TensorBoardLogger in Trainer(logger=...); "
                           "no histograms will be written.")

    def _record_call(self, module: nn.Module, *_: Any) -> None:
        self._first_call.setdefault(id(module), len(self._first_call))

    def _sort_forward_order(self) -> None:
        """Reorder the layers by first call of their module (never-called ones last), then drop the hooks."""
        self._remove_hooks()
        last = len(self._first_call)
        order = sorted(range(len(self._params)), key=lambda i: self._first_call.get(id(self._owners[i]), last))
        self.layers = [self.layers[i] for i in order]
        self._params = [self._params[i] for i in order]

    def _remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self._hooks:
            self._sort_forward_order()
        stepping = {id(p) for group in optimizer.param_groups for p in group["params"]}
        rows = []
        for param in self._params:
            grad = param.grad
            if grad is None or id(param) not in stepping:
                rows.append(self._row_missing)
                continue
            values = stored_values(grad)
            l1, l2, max_abs = (torch.linalg.vector_norm(values, o, dtype=torch.float32) for o in (1, 2, math.inf))
            w_norm = torch.linalg.vector_norm(param.detach(), 2, dtype=torch.float32)
            row = torch.stack([l1 / param.numel(), l2, l2 / w_norm.clamp_min(_TINY), max_abs, self._one])
            rows.append(row.to(self._one.device))
        stats = torch.stack(rows)  # (L, 5) as GradientSums.add reads them, on device: no sync here
        every = self.log_every_n_steps  # histograms of the step that closes an interval (or opens an epoch)
        if self._histograms and (self._interval.steps + 1 == every if every else self._epoch.steps == 0):
            add_histograms(trainer, {t: stored_values(p.grad) for t, p in zip(self.layers, self._params)
                                     if p.grad is not None and id(p) in stepping})
        self._epoch.add(stats)
        if self.log_every_n_steps is not None:
            self._interval.add(stats)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self.log_every_n_steps is not None and self._interval.steps >= self.log_every_n_steps:
            self._log("grad_step", self._interval.read(), trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._epoch.steps == 0:
            return
        epoch = trainer.current_epoch
        rows = self._epoch.read()
        self._log("grad", rows, trainer)
        layers = {tag: row for tag, row in zip(self.layers, rows)}
        self.history.append({"epoch": epoch, "step": trainer.global_step, "layers": layers})
        self._warn(epoch, layers)
        n = self.plot_every_n_epochs
        if n and (epoch + 1) % n == 0 and trainer.is_global_zero:
            fig = flow_figure(layers, epoch, self.vanishing_threshold, self.exploding_threshold)
            publish_figure(trainer, fig, "grad/flow", f"gradient_flow_epoch{epoch:03d}")

    def _log(self, prefix: str, rows: list[dict[str, float]], trainer: Trainer) -> None:
        # A layer with no finite gradient in the interval has NaN statistics: leave them out of the logger (the
        # warning and `history` say so) rather than draw NaN points in TensorBoard.
        metrics = {f"{prefix}/{tag}/{stat}": row[stat] for tag, row in zip(self.layers, rows) for stat in STATS
                   if math.isfinite(row[stat])}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def _warn(self, epoch: int, layers: dict[str, dict[str, float]]) -> None:
        vanishing = [t for t, r in layers.items() if r["mean_abs"] < self.vanishing_threshold]
        exploding = [t for t, r in layers.items() if r["mean_abs"] > self.exploding_threshold or r["nonfinite_steps"]]
        parts = []
        if vanishing:
            parts.append(f"vanishing gradients (mean |grad| < {self.vanishing_threshold:g}) in: {', '.join(vanishing)}")
        if exploding:
            limit = f"mean |grad| > {self.exploding_threshold:g} or NaN/inf"
            parts.append(f"exploding gradients ({limit}) in: {', '.join(exploding)}")
        if parts:
            rank_zero_warn(f"GradientFlowMonitor, epoch {epoch}: {'; '.join(parts)}", category=GradientFlowWarning)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()
        if self.plot_every_n_epochs and self.history and trainer.is_global_zero:
            fig = heatmap_figure(self.series("mean_abs"), [e["epoch"] for e in self.history])
            publish_figure(trainer, fig, "grad/flow_heatmap", "gradient_flow_heatmap")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._remove_hooks()  # fit failed before the first step: leave the model as it was

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
