"""How far each optimizer step moves each weight matrix, per input column: the optimizer's effective step size."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from dlbasics.callbacks.diagnostics._names import display_name
from dlbasics.checks import check_int


class UpdateSizeMonitor(Callback):
    """Record ``mean |w_after - w_before|`` of every weight matrix per input column at sampled optimizer steps.

    For a ``Linear`` weight ``(out, in)`` column ``j`` holds the weights from input ``j``: with one input feature
    100x larger than another, SGD moves that column's weights 100x more per step, while Adam, which divides each
    weight's step by the root of its own running squared gradient, moves both columns about ``lr`` per step. A
    conv weight ``(out, in, kh, kw)`` is read per input channel. Parameters with fewer than 2 dimensions (biases,
    norm scales) are left out.

    The weights the stepping optimizer holds are copied in ``on_before_optimizer_step`` and compared in
    ``on_train_batch_end``, after the step: that costs one copy of the weights per sampled step, so sample sparsely
    on a large model. ``history`` lists ``{"step": global step before the update, "layers": {name: [mean |dw| of
    column 0, column 1, ...]}}``; ``series(name, column)`` reads one column over the steps. Works with any
    LightningModule and optimizer (automatic optimization, or manual with one ``optimizer.step()`` per batch).

    Args:
        every_n_steps: record one optimizer step in this many (1: every step).
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", minimum=1)
        self.history: list[dict[str, Any]] = []
        self._before: dict[str, tuple[Tensor, Tensor]] = {}
        self._names: dict[int, str] = {}
        self._step = -1

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._names = {id(p): display_name(name) for name, p in pl_module.named_parameters() if p.dim() >= 2}

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        self._step = trainer.global_step
        for group in optimizer.param_groups:
            for param in group["params"]:
                if id(param) in self._names and param.requires_grad:
                    self._before[self._names[id(param)]] = (param, param.detach().clone())

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if not self._before:
            return
        layers = {}
        for name, (param, before) in self._before.items():
            change = (param.detach() - before).abs()  # (out, in, ...)
            layers[name] = change.transpose(0, 1).reshape(change.shape[1], -1).mean(dim=1).tolist()
        self.history.append({"step": self._step, "layers": layers})
        self._before = {}

    def series(self, name: str, column: int) -> list[float]:
        """``mean |dw|`` of one layer's input column at each recorded step."""
        return [entry["layers"][name][column] for entry in self.history if name in entry["layers"]]

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
