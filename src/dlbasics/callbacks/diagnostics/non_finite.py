"""Stop (or skip the step) when any LightningModule's loss or gradients become NaN/inf."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from dlbasics.callbacks.diagnostics._gradients import stored_values
from dlbasics.callbacks.diagnostics._names import display_name, shortlist
from dlbasics.callbacks.diagnostics._running_stats import RunningStats
from dlbasics.checks import check_choice
from dlbasics.user_errors import UserError

ACTIONS = ("stop", "skip")


class NonFiniteError(UserError, RuntimeError):
    """Training produced a NaN/inf loss or gradient and NonFiniteGuard stopped it."""


class NonFiniteGuard(Callback):
    """Catch a NaN/inf loss or gradient before the optimizer applies it, then stop training or skip the step.

    Every backward's loss is kept (``on_before_backward``) and checked together with the gradients of the
    stepping optimizer's parameters in ``on_before_optimizer_step``: one float32 sum per tensor, non-finite
    exactly when a value is (or when the sum overflows float32, which only an already useless gradient does),
    and one host sync per step. Ranks agree through ``trainer.strategy.reduce_boolean_decision``, so a NaN on
    any rank acts on all. With mixed precision and a gradient scaler (``precision="16-mixed"``), NaN/inf
    gradients are the scaler's business (it skips those steps and lowers its scale), so only the loss is checked.

    On a bad step the parameters' gradients are set to None, so the optimizer step changes nothing (Adam, SGD
    and friends skip parameters without a gradient), and the running statistics of the norm layers
    (``running_mean``, ``running_var``, ``num_batches_tracked`` of BatchNorm, SyncBatchNorm and InstanceNorm with
    ``track_running_stats``), which the bad step's forward passes already updated, are put back as they were
    after the last applied step, so the model does not evaluate to NaN; other buffers a forward writes (your own
    running averages) are not. In both modes; then:

    - ``action="stop"``: ``trainer.should_stop`` is set, so training ends after this step (the end-of-epoch
      hooks, validation and checkpoints still run, on weights that never saw the bad update; any later
      step, e.g. while ``min_epochs`` is not reached, is blocked the same way). When the fit has finished,
      ``on_fit_end`` raises ``NonFiniteError`` with the message, so ``trainer.fit`` fails and the CLI exits
      with a non-zero status after every other callback has written its results; with
      ``raise_error=False`` the message is a warning instead.
    - ``action="skip"``: the step is dropped with a warning, ``nonfinite/skipped`` (the count so far) is
      logged, and training goes on.

    Nothing is refused: any model, precision and optimization (automatic, manual) works. The message names the
    global step (the optimizer step about to run, as in ``trainer.global_step``), the epoch, the batch, whether
    the loss was NaN/inf and the parameters whose gradients were not finite (named without ``torch.compile``'s
    ``_orig_mod``).
    ``history`` lists the events as ``{"step": 12, "epoch": 1, "batch": 4, "what": "loss" | "gradients",
    "loss": nan | None, "layers": ["net.0.weight", ...], "action": "stop" | "skip", "inputs": "1 NaN and 0 inf
    values in batch[0]" | ""}`` (``inputs`` names the input tensors that held NaN/inf: then the data is the
    cause); ``skipped`` counts the skipped steps. Both are restored from checkpoints.

    Args:
        action: ``stop`` ends training at the first bad step; ``skip`` drops bad steps and continues.
        raise_error: with ``action="stop"``, raise ``NonFiniteError`` when the fit ends (non-zero exit status
            from the CLI); False only warns.
    """

    def __init__(self, action: Literal["stop", "skip"] = "stop", raise_error: bool = True) -> None:
        self.action, self.raise_error = check_choice(action, "action", ACTIONS), raise_error
        self.history: list[dict[str, Any]] = []
        self.skipped = 0
        self._losses: list[Tensor] = []
        self._param_names: dict[int, str] = {}
        self._running_stats: RunningStats | None = None
        self._batch_idx, self._batch = -1, None
        self._stop_message: str | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._param_names = {id(p): display_name(name) for name, p in pl_module.named_parameters()}
        self._losses, self._stop_message = [], None
        self._running_stats = RunningStats(pl_module)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._running_stats.save()  # after any checkpoint was loaded, before the first training forward

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch_idx, self._batch = batch_idx, batch  # the batch is only looked at when a step goes bad

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        self._losses.append(loss.detach())  # checked with the gradients, to keep to one sync per step

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        losses, self._losses = self._losses, []
        if self._stop_message is not None:  # stopped, but the loop goes on (min_epochs): apply nothing
            self._drop_gradients(params)
            self._running_stats.restore()
            return
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        grads = [] if scaler is not None else [p.grad for p in params if p.grad is not None]
        # One float32 sum per tensor, NaN/inf exactly when a value is (or when the sum overflows, past 3e38, which
        # only a useless gradient reaches): a single read, where isfinite().all() is ~30x slower on CPU.
        sums = [loss.detach().float().sum() for loss in losses] + [stored_values(g).sum(dtype=torch.float32)
                                                                   for g in grads]
        local_bad = False
        if sums:
            device = sums[0].device
            local_bad = not bool(torch.stack([x.to(device) for x in sums]).isfinite().all())  # the one host sync
        if not trainer.strategy.reduce_boolean_decision(local_bad, all=False):
            self._running_stats.save()  # this step's forward statistics are kept: the next bad step goes back here
            return
        event = self._event(trainer, params, losses)
        self._drop_gradients(params)
        self._running_stats.restore()
        self.history.append(event)
        self.skipped += self.action == "skip"
        message = self._message(event)
        if self.action == "skip":
            for logger in trainer.loggers:
                logger.log_metrics({"nonfinite/skipped": float(self.skipped)}, step=trainer.global_step)
            rank_zero_warn(message)
        else:
            trainer.should_stop = True
            self._stop_message = message
            if not self.raise_error:
                rank_zero_warn(message)

    @staticmethod
    def _drop_gradients(params: list[Tensor]) -> None:
        for param in params:
            param.grad = None

    def _event(self, trainer: Trainer, params: list[Tensor], losses: list[Tensor]) -> dict[str, Any]:
        """What went wrong at this step; only runs when a check failed, so it may sync freely."""
        values = torch.stack([x.float().reshape(-1)[0] for x in losses]).tolist() if losses else []
        bad_losses = [v for v in values if not math.isfinite(v)]
        with_grad = [p for p in params if p.grad is not None]
        flags = [bool(stored_values(p.grad).isfinite().all()) for p in with_grad]
        layers = [self._param_names.get(id(p), f"<unnamed parameter {i}>")
                  for i, (p, ok) in enumerate(zip(with_grad, flags)) if not ok]
        what = "loss" if bad_losses else "gradients" if layers else "other rank"
        return {"step": trainer.global_step, "epoch": trainer.current_epoch, "batch": self._batch_idx,
                "what": what, "loss": bad_losses[0] if bad_losses else None, "layers": layers, "action": self.action,
                "inputs": non_finite_inputs(self._batch)}

    def _message(self, event: dict[str, Any]) -> str:
        parts = [f"loss is {event['loss']}"] if event["loss"] is not None else []
        if event["layers"]:
            parts.append(f"non-finite gradients in: {shortlist(event['layers'])}")
        if not parts:
            parts.append("a non-finite loss or gradient on another rank")
        if event.get("inputs"):  # absent from events restored from older checkpoints
            parts.append(f"the cause is the input batch, which holds {event['inputs']}: check the data, not the "
                         "learning rate")
        if self.action == "skip":
            outcome = f"This optimizer step was skipped ({self.skipped} so far); training continues."
        else:
            outcome = "This optimizer step was not applied and training was stopped; the weights are from before it."
        return (f"NonFiniteGuard: at global step {event['step']} (epoch {event['epoch']}, batch {event['batch']}) "
                f"{'; '.join(parts)}. {outcome}")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._stop_message is not None and self.raise_error:
            raise NonFiniteError(self._stop_message)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history, self.skipped = state_dict["history"], state_dict["skipped"]


def non_finite_inputs(batch: Any) -> str:
    """``"3 NaN and 1 inf values in batch[0]"`` for the floating tensors of a batch (a tensor, tuple, list or dict)
    that hold NaN or inf, or ``""`` when none does."""
    items = batch.items() if isinstance(batch, dict) else enumerate(batch) if isinstance(batch, (list, tuple)) \
        else [("", batch)]
    found = []
    for key, value in items:
        if isinstance(value, Tensor) and value.is_floating_point():
            nan, inf = int(value.isnan().sum()), int(value.isinf().sum())
            if nan or inf:
                found.append(f"{nan} NaN and {inf} inf values in batch{f'[{key!r}]' if key != '' else ''}")
    return "; ".join(found)
