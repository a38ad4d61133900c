"""The running statistics a training forward updates (BatchNorm's), saved between steps so a bad step can be undone."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase  # BatchNorm*, SyncBatchNorm, InstanceNorm*, their Lazy forms
from torch.nn.parameter import is_lazy


class RunningStats:
    """A copy of every ``running_mean``/``running_var``/``num_batches_tracked`` of a model's norm layers.

    The forward pass of a step whose loss turns NaN has already written its batch statistics into them, so a
    step that is not applied must also put these back, or the model evaluates to NaN with clean weights.
    ``save`` copies them into buffers made once; ``restore`` copies them back.
    """

    def __init__(self, model: nn.Module) -> None:
        self._live: list[Tensor] = [
            buffer for module in model.modules() if isinstance(module, _NormBase) and module.track_running_stats
            for buffer in (module.running_mean, module.running_var, module.num_batches_tracked)
            if buffer is not None]  # fmt: skip
        self._saved: list[Tensor] | None = None

    def __bool__(self) -> bool:
        return bool(self._live)

    def save(self) -> None:
        if not self._live or any(is_lazy(b) for b in self._live):  # a Lazy norm before its first forward
            return
        if self._saved is None or any(s.shape != b.shape for s, b in zip(self._saved, self._live)):
            self._saved = [b.detach().clone() for b in self._live]
            return
        with torch.no_grad():
            for saved, live in zip(self._saved, self._live):
                saved.copy_(live)

    def restore(self) -> None:
        if self._saved is not None:
            with torch.no_grad():
                for saved, live in zip(self._saved, self._live):
                    live.copy_(saved)
