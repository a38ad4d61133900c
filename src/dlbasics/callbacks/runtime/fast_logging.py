"""Make ``self.log`` cheaper for runs of many tiny steps: skip Lightning's device move when there is nothing to move.

On every ``self.log`` call Lightning moves the stored result to the logged value's device
(``_ResultMetric.to``), even when it already lives there. The move walks the result's whole ``__dict__`` (the
module's hook dictionaries, its metric state) and deep-copies its metadata dataclasses: about 0.4 ms per call on
a laptop-class CPU. That is a quarter of an L5 lesson run, where each epoch is one full batch
(``python -m benchmarks --only tinynet``). Lightning's maintainers treat per-call overhead on tiny models as
won't-fix (Lightning-AI/pytorch-lightning#6196, #8857).

``FastLogging`` returns early from that move when every tensor of the result is already on the target device,
and otherwise calls Lightning's own method. Logged values, their reduction and their DDP synchronisation are
untouched (tests/test_fast_logging.py compares runs with and without it). The replacement is installed for the
duration of a fit, validate, test or predict call and removed afterwards. With a Lightning whose internals
differ from what this was written for (2.6), it does nothing and says so once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import Metric

try:  # a private Lightning module: absent or changed in another Lightning, the callback does nothing
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric
except ImportError:  # pragma: no cover (depends on the installed Lightning)
    _ResultMetric = None


def on_device(result: Any, device: torch.device) -> bool:
    """Whether everything ``_ResultMetric.to(device)`` would move is already on ``device``.

    A result holds either tensor states (``value`` and, for means, ``cumulated_batch_size``; named in ``_defaults``)
    or, when a torchmetrics ``Metric`` was logged, that metric as ``value``. Before its first update it holds no
    value, and Lightning's move must run.
    """
    state = result.__dict__
    value = state.get("value")
    if isinstance(value, Metric):
        return value.device == device
    if not isinstance(value, torch.Tensor):
        return False
    names = state.get("_defaults", {})
    return bool(names) and all(isinstance(state.get(name), torch.Tensor) and state[name].device == device
                               for name in names)


def supported() -> bool:
    """Whether the installed Lightning has the ``_ResultMetric`` this was written for."""
    return _ResultMetric is not None and callable(getattr(_ResultMetric, "to", None))


class _Installed:
    """The original ``_ResultMetric.to`` and how many active users need the replacement (runs may nest)."""

    original: Callable[..., Any] | None = None
    users = 0


def _fast_to(self: Any, *args: Any, **kwargs: Any) -> Any:
    # Lightning's call is `result.to(value.device)`; any other form goes to Lightning's method unchanged.
    if len(args) == 1 and not kwargs and isinstance(args[0], torch.device) and on_device(self, args[0]):
        return self
    return _Installed.original(self, *args, **kwargs)


class FastLogging(Callback, AbstractContextManager):
    """Skip Lightning's per-``self.log`` device move when the logged result is already on the device.

    Use it as a callback (``trainer.callbacks`` in YAML: ``- class_path: dlbasics.callbacks.FastLogging``), or as a
    context manager around code that runs trainers (``with FastLogging(): trainer.fit(...)``). The lessons use it.
    It changes no logged value; it matters only where ``self.log`` runs thousands of times on small steps.
    """

    def __init__(self) -> None:
        self._active = False

    def __enter__(self) -> FastLogging:
        self._install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._uninstall()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._install()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._uninstall()

    def _install(self) -> None:
        if self._active:
            return
        if not supported():
            rank_zero_warn("FastLogging: this Lightning has no `_ResultMetric.to`; logging runs at its usual speed.")
            return
        if _Installed.users == 0:
            _Installed.original = _ResultMetric.to
            _ResultMetric.to = _fast_to
        _Installed.users += 1
        self._active = True

    def _uninstall(self) -> None:
        if not self._active:
            return
        self._active = False
        _Installed.users -= 1
        if _Installed.users == 0:
            _ResultMetric.to = _Installed.original
            _Installed.original = None
