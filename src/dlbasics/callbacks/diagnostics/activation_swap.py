"""Swap a network's activations mid-training on a schedule (lesson L1.d: tanh for 35 epochs, then ReLU)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from dlbasics.activations import check_activation, make_activation
from dlbasics.callbacks.diagnostics._activation_layers import (describe_activations, find_activations,
                                                                functional_activations, functional_hint)
from dlbasics.callbacks.diagnostics._names import display_name
from dlbasics.callbacks.diagnostics._replace_module import replace_module
from dlbasics.checks import check_int, check_pattern


@dataclass
class Swap:
    """One scheduled swap; give exactly one of ``at_epoch`` and ``at_step``.

    Args:
        to: registry name of the new activation, e.g. ``"relu"``.
        at_epoch: first epoch (0-based) that trains with ``to``: ``35`` keeps epochs 0..34 on the old activation.
        at_step: first optimizer step (``trainer.global_step``) that trains with ``to``.
        from_kind: registry name of the activations to replace; None replaces every registry activation except
            ``identity`` (an ``nn.Identity`` is more often a placeholder than an activation).
        pattern: regular expression searched (``re.search``) in qualified module names (without
            ``torch.compile``'s ``_orig_mod``), e.g. ``"layers\\.1$"``; None matches every name.
        negative_slope: slope of a ``leaky_relu`` target for negative inputs.
    """

    to: str
    at_epoch: int | None = None
    at_step: int | None = None
    from_kind: str | None = None
    pattern: str | None = None
    negative_slope: float = 0.01

    def __str__(self) -> str:
        when = f"epoch {self.at_epoch}" if self.at_epoch is not None else f"step {self.at_step}"
        where = f" in modules matching {self.pattern!r}" if self.pattern is not None else ""
        return f"at {when}: {self.from_kind or 'any activation'} -> {self.to}{where}"

    def selects(self, name: str, kind: str) -> bool:
        """Whether this swap replaces the activation of registry name ``kind`` found at module ``name``."""
        if kind == self.to or (self.pattern is not None and re.search(self.pattern, display_name(name)) is None):
            return False
        return kind == self.from_kind if self.from_kind is not None else kind != "identity"

    def is_due(self, trainer: Trainer) -> bool:
        """Whether training has reached this swap's epoch or step."""
        if self.at_epoch is not None:
            return trainer.current_epoch >= self.at_epoch
        return trainer.global_step >= self.at_step


def _check_swap(swap: Swap | dict[str, Any], where: str) -> Swap:
    """Return ``swap`` as a valid ``Swap`` (dicts are converted), else raise a ValueError naming the bad field."""
    if isinstance(swap, dict):
        names = [f.name for f in fields(Swap)]
        unknown = sorted(set(swap) - set(names))
        if unknown or "to" not in swap:
            raise ValueError(
                f"{where} {swap!r} must have 'to' and only the keys {', '.join(names)}; unknown: {unknown}"
            )
        swap = Swap(**swap)
    check_activation(swap.to, f"{where}.to")
    if swap.from_kind is not None:
        check_activation(swap.from_kind, f"{where}.from_kind")
    if swap.from_kind == swap.to:
        raise ValueError(
            f"{where} swaps {swap.to!r} for itself, which changes nothing; pick another 'to' or 'from_kind'"
        )
    if (swap.at_epoch is None) == (swap.at_step is None):
        raise ValueError(f"{where} needs exactly one of at_epoch and at_step, got {swap.at_epoch=}, {swap.at_step=}")
    key = "at_epoch" if swap.at_epoch is not None else "at_step"
    check_int(getattr(swap, key), f"{where}.{key}", minimum=0)  # a 0-based epoch or global step
    if swap.pattern is not None:
        check_pattern(swap.pattern, f"{where}.pattern")
    if any(True for _ in make_activation(swap.to, swap.negative_slope).parameters()):
        raise ValueError(
            f"{where}.to {swap.to!r} builds an activation with parameters; ActivationSwap refuses those because the "
            "new parameters would be in neither the optimizer nor DDP's gradient buckets"
        )
    return swap


def _check_order(schedule: list[Swap]) -> None:
    """Raise a ValueError if the schedule mixes epoch and step swaps or is not in time order."""
    by_epoch = [swap.at_epoch is not None for swap in schedule]
    if any(by_epoch) and not all(by_epoch):
        raise ValueError("schedule mixes at_epoch and at_step swaps; give every swap at_epoch, or every swap at_step")
    times = [swap.at_epoch if swap.at_epoch is not None else swap.at_step for swap in schedule]
    for i in range(1, len(schedule)):
        if times[i] < times[i - 1]:
            raise ValueError(
                f"schedule[{i}] ({schedule[i]}) comes before schedule[{i - 1}] ({schedule[i - 1]}); "
                "list the swaps in the order they happen"
            )


class ActivationSwap(Callback):
    """Replace a network's activation modules mid-training, following a schedule; works with any LightningModule.

    A swap replaces every registry activation module it selects (found with ``named_modules()``, filtered by
    ``from_kind`` and ``pattern``) with a fresh instance from ``dlbasics.activations``, set on the parent under the
    same name, so it works inside ``nn.Sequential`` too. Timing: ``at_epoch=35`` trains epochs 0..34 with the old
    activation and epoch 35 onwards with the new one (the swap happens at ``on_train_epoch_start``); ``at_step=100``
    swaps in ``on_train_batch_start`` before optimizer step 100. A swap found overdue when training (re)starts
    without it in the checkpoint, say the callback was added to a resumed run, happens at the first epoch start.

    Applied swaps are saved in checkpoints and re-applied on resume: a swap changes no weight, so the model's
    state_dict alone would bring the old activations back. Forward and backward hooks on a replaced module move to
    its replacement. A module that decided at construction how to run its activation learns of the swap: an
    ``nn.TransformerEncoderLayer``'s inference fast path (eval mode, no grad) computes relu or gelu from a flag, not
    by calling ``activation``, and the swap sets that flag (to 0, turning the fast path off, for other kinds), so
    validation and prediction use the new activation too. Parametrised activations (``nn.PReLU``) are refused:
    their new parameters would be in neither the optimizer nor DDP's gradient buckets. Also refused before the run
    (``check_before_run``): a swap that never happens (past ``max_epochs``/``max_steps``) or finds nothing to
    replace, which includes every activation of a model that calls activation functions (``torch.relu(x)``,
    ``nn.TransformerEncoderLayer(activation="gelu")``) instead of modules; and resuming with another schedule.
    Under ``ddp_spawn`` the swaps and ``history`` live in the worker processes; the main process gets the trained
    weights back into its unswapped model.

    ``history`` holds one record per swap: ``{"swap": 0, "epoch": 35, "step": 35, "from": ["tanh"], "to": "relu",
    "layers": ["net.layers.1"]}``. Each swap is logged as the scalar ``activation/swap`` (the number of swaps so
    far) at the global step, and as text under the same tag on TensorBoard loggers.

    Args:
        schedule: the swaps in the order they happen, all by ``at_epoch`` or all by ``at_step``, e.g.
            ``[{at_epoch: 35, from_kind: tanh, to: relu}]``; see ``Swap`` for the fields.
    """

    def __init__(self, schedule: list[Swap]) -> None:
        super().__init__()
        if not schedule:
            raise ValueError("schedule must list at least one swap, e.g. [{at_epoch: 35, to: relu}], got []")
        self.schedule = [_check_swap(swap, f"schedule[{i}]") for i, swap in enumerate(schedule)]
        _check_order(self.schedule)
        self.history: list[dict[str, Any]] = []
        self._applied = 0  # schedule[:_applied] has happened, in this run or in the run it resumes
        self._to_reapply = 0  # how many of those a freshly built model still lacks after a checkpoint was loaded

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reapply(pl_module)  # Lightning loads callback states before on_fit_start (see Trainer._run)
        self.check_before_run(trainer, pl_module)  # also for runs without the CLI; resumed: the pending swaps only

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reapply(pl_module)  # strategies that restore checkpoints after setup (DeepSpeed) load our state later

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._apply_due(trainer, pl_module)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._apply_due(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        # Plain values only, so checkpoints load with torch.load(weights_only=True).
        return {"applied": [asdict(swap) for swap in self.schedule[: self._applied]], "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        applied = state_dict["applied"]
        if applied != [asdict(swap) for swap in self.schedule[: len(applied)]]:
            raise ValueError(
                f"the checkpoint's ActivationSwap had applied {applied}, which does not start this schedule "
                f"{[asdict(swap) for swap in self.schedule]}; resume with the schedule the checkpoint was written with"
            )
        self._applied = self._to_reapply = len(applied)
        self.history = list(state_dict["history"])

    def _reapply(self, pl_module: LightningModule) -> None:
        for swap in self.schedule[: self._to_reapply]:
            self._swap(pl_module, swap)
        self._to_reapply = 0

    def _apply_due(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A pure function of (epoch, step) and the swaps applied so far, which are identical on every DDP rank:
        # all ranks swap before the same step without communicating.
        while self._applied < len(self.schedule) and self.schedule[self._applied].is_due(trainer):
            swap = self.schedule[self._applied]
            replaced = self._swap(pl_module, swap)
            self._applied += 1
            self._record(trainer, swap, replaced)

    @staticmethod
    def _swap(pl_module: nn.Module, swap: Swap) -> dict[str, str]:
        """Replace the modules ``swap`` selects; return ``{qualified name: old registry name}``."""
        replaced = {}
        for name, _, kind in find_activations(pl_module, remove_duplicate=False):
            if not swap.selects(name, kind):
                continue
            replace_module(pl_module, name, make_activation(swap.to, swap.negative_slope))
            replaced[display_name(name)] = kind
        return replaced

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse swaps that would never happen or would find nothing to replace; the CLI calls it before the run
        folder exists, ``on_fit_start`` again once a checkpoint's applied swaps are known."""
        pending = list(enumerate(self.schedule))[self._applied :]
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        for i, swap in pending:
            if swap.at_epoch is not None and max_epochs not in (None, -1) and swap.at_epoch >= max_epochs:
                raise ValueError(
                    f"ActivationSwap schedule[{i}] ({swap}) never happens: training runs epochs 0..{max_epochs - 1} "
                    f"(max_epochs={max_epochs}); use an at_epoch below {max_epochs} or raise max_epochs"
                )
            if swap.at_step is not None and max_steps != -1 and swap.at_step >= max_steps:
                raise ValueError(
                    f"ActivationSwap schedule[{i}] ({swap}) never happens: training stops after {max_steps} steps "
                    f"(max_steps={max_steps}); use an at_step below {max_steps} or raise max_steps"
                )
        # Play the schedule on the names alone: a later swap may replace what an earlier one put in.
        kinds = {name: kind for name, _, kind in find_activations(pl_module, remove_duplicate=False)}
        for i, swap in pending:
            hits = [name for name, kind in kinds.items() if swap.selects(name, kind)]
            if not hits:
                state = "are" if i == self._applied else f"will be, after schedule[{i - 1}],"
                hint = f". {functional_hint(pl_module)}" if not kinds or functional_activations(pl_module) else ""
                raise ValueError(
                    f"ActivationSwap schedule[{i}] ({swap}) finds nothing to replace in {type(pl_module).__name__}; "
                    f"its activations {state}: {describe_activations(kinds)}; change from_kind or pattern{hint}"
                )
            kinds.update(dict.fromkeys(hits, swap.to))

    def _record(self, trainer: Trainer, swap: Swap, replaced: dict[str, str]) -> None:
        record = {
            "swap": self._applied - 1,
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "from": sorted(set(replaced.values())),
            "to": swap.to,
            "layers": list(replaced),
        }
        self.history.append(record)
        text = (
            f"epoch {record['epoch']}, step {record['step']}: {', '.join(record['from'])} -> {swap.to} "
            f"in {', '.join(record['layers'])}"
        )
        rank_zero_info(f"ActivationSwap: {text}")
        for logger in trainer.loggers:  # log_metrics and experiment write on rank zero only
            logger.log_metrics({"activation/swap": float(self._applied)}, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("activation/swap", text, global_step=trainer.global_step)
