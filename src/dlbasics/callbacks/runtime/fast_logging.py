"""Make ``self.log`` cheaper for runs of many tiny steps: skip Lightning's device move when there is nothing to move.

On every ``self.log`` call Lightning moves the stored result to the logged value's device
(``_ResultMetric.to``), even when it already lives there. The move walks the result's whole ``__dict__`` (the
module's hook dictionaries, its metric state) and deep-copies its metadata dataclasses, which adds up on runs
where each epoch is one tiny full batch, such as the L5 lesson's 500 epochs. What it saves there is measured in
benchmarks/RESULTS.md (``python -m benchmarks.fast_logging``), as the numbers depend on the machine and the
Lightning version. Lightning's maintainers treat per-call overhead on tiny models as won't-fix
(Lightning-AI/pytorch-lightning#6196, #8857).

``FastLogging`` returns early from that move when every tensor of the result is already on the target device,
and otherwise calls Lightning's own method. Logged values, their reduction and their DDP synchronisation are
untouched (tests/test_fast_logging.py compares runs with and without it).

It replaces a private Lightning method for the whole process, so it is careful about when:

- only on the Lightning versions it is tested with, ``LIGHTNING_VERSIONS``; on any other (or one without
  ``_ResultMetric.to``) it does nothing and warns;
- only while a user needs it: a trainer run that has the callback (from ``setup`` to ``teardown``) or a ``with``
  block. Users may nest (two callbacks, a ``with`` block around or inside a run); Lightning's method is back
  when the last one ends, however it ends: a failed run (an exception in any hook or step, ``KeyboardInterrupt``,
  ``NonFiniteGuard`` raising from ``on_fit_end``) skips ``teardown`` but calls ``on_exception``, which removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch import __version__ as LIGHTNING_VERSION
from lightning.pytorch.utilities import rank_zero_warn
from packaging.specifiers import SpecifierSet
from torchmetrics import Metric

try:  # a private Lightning module: absent or changed in another Lightning, the callback does nothing
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric
except ImportError:  # pragma: no cover (depends on the installed Lightning)
    _ResultMetric = None

# The releases it is tested with: tests/test_fast_logging.py passes on 2.6.4, 2.6.5 and 2.6.6 (whose
# `_ResultMetric` source is the same). Widen it only after running those tests on the new release.
LIGHTNING_VERSIONS = ">=2.6.4,<2.7"


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


def unsupported_reason() -> str | None:
    """Why the replacement must not be installed in this process, or None if it may."""
    if LIGHTNING_VERSION not in SpecifierSet(LIGHTNING_VERSIONS):
        return f"it is tested with Lightning {LIGHTNING_VERSIONS}, and this is Lightning {LIGHTNING_VERSION}"
    if _ResultMetric is None or not callable(getattr(_ResultMetric, "to", None)):
        return "this Lightning has no `_ResultMetric.to`"
    return None


class _Patch:
    """Lightning's ``_ResultMetric.to`` while ours replaces it, and how many users need ours."""

    original: Callable[..., Any] | None = None
    users = 0


def _fast_to(self: Any, *args: Any, **kwargs: Any) -> Any:
    # Lightning's call is `result.to(value.device)`; any other form goes to Lightning's method unchanged.
    if len(args) == 1 and not kwargs and isinstance(args[0], torch.device) and on_device(self, args[0]):
        return self
    return _Patch.original(self, *args, **kwargs)


def _acquire() -> bool:
    """Count one more user, installing the replacement for the first; False (and a warning) where unsupported."""
    reason = unsupported_reason()
    if reason is not None:
        rank_zero_warn(f"FastLogging does nothing: {reason}; logging runs at its usual speed.")
        return False
    if _Patch.users == 0:
        _Patch.original, _ResultMetric.to = _ResultMetric.to, _fast_to
    _Patch.users += 1
    return True


def _release() -> None:
    """Count one user less; the last one puts Lightning's method back."""
    _Patch.users -= 1
    if _Patch.users == 0:
        if _ResultMetric.to is _fast_to:  # unless someone replaced it since (then theirs stays)
            _ResultMetric.to = _Patch.original
        _Patch.original = None


class FastLogging(Callback, AbstractContextManager):
    """Skip Lightning's per-``self.log`` device move when the logged result is already on the device.

    Use it as a callback (``trainer.callbacks`` in YAML: ``- class_path: dlbasics.callbacks.FastLogging``), or as a
    context manager around code that runs trainers (``with FastLogging(): trainer.fit(...)``). It changes no logged
    value; it matters only where ``self.log`` runs thousands of times on small steps.
    """

    def __init__(self) -> None:
        self._blocks: list[bool] = []  # one entry per open `with` block: whether it counted as a user
        self._running = False  # whether a trainer run that has this callback counts as a user

    def __enter__(self) -> FastLogging:
        self._blocks.append(_acquire())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._blocks.pop():
            _release()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self._running:
            self._running = _acquire()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._end_run()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._end_run()  # a failed run never reaches teardown

    def _end_run(self) -> None:
        if self._running:
            self._running = False
            _release()
