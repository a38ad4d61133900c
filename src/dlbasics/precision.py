"""bf16 autocast where the hardware computes bf16 natively, fp32 elsewhere: a Lightning precision plugin.

``--trainer.precision bf16-mixed`` always autocasts to bf16. On a CPU without native bf16 (no AVX512_BF16 or
AMX-BF16 on x86, no FEAT_BF16 on ARM) PyTorch's bf16 kernels convert to fp32 and back, which is slower than fp32,
so a config that should be fast everywhere cannot name one precision. ``BF16WhereNative`` decides on the machine
that trains, once the model is on its device:

- CPU: bf16 where ``dlbasics.cpu_features.native_bf16()`` finds one of the flags above in what the operating
  system reports (``/proc/cpuinfo``, ``sysctl``); the model name is never used.
- CUDA: bf16 where ``torch.cuda.is_bf16_supported(including_emulation=False)`` (compute capability 8.0 and up).
- Anything else (MPS, ...): fp32, as dlbasics cannot tell there.

In a config::

    trainer:
      plugins:
        - class_path: dlbasics.precision.BF16WhereNative

A plugin and ``trainer.precision`` exclude each other (Lightning refuses both): to choose by hand, drop the plugin
with ``--trainer.plugins=null`` and give ``--trainer.precision bf16-mixed`` or ``32-true``.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.utilities import rank_zero_info

from dlbasics.cpu_features import NATIVE_BF16_FLAGS, cpu_flags, native_bf16_flags

__all__ = ["BF16WhereNative", "native_bf16_on"]


def native_bf16_on(device_type: str, flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether a device of this type (``cpu``, ``cuda``, ``mps``) computes bf16 natively, and why, in words.

    Args:
        device_type: ``torch.device.type`` of the device that trains.
        flags: the CPU's feature flags (default: this CPU's ``cpu_flags()``); read for ``cpu`` only.
    """
    if device_type == "cpu":
        found = native_bf16_flags(cpu_flags() if flags is None else flags)
        if found:
            return True, f"this CPU has native bf16 ({', '.join(found)} in its feature flags)"
        return False, (f"this CPU has no native bf16 (none of {', '.join(NATIVE_BF16_FLAGS)} in its feature flags), "
                       "so bf16 would be emulated, slower than fp32")
    if device_type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name()} computes bf16 natively"
        return False, "this GPU has no native bf16 (compute capability below 8.0)"
    return False, f"dlbasics does not detect native bf16 on {device_type!r} devices"


class BF16WhereNative(MixedPrecision):
    """``bf16-mixed`` (bf16 autocast, fp32 weights and optimizer) where the training device computes bf16
    natively, ``32-true`` elsewhere (``native_bf16_on``). Decided when Lightning connects the plugin to the model on
    its device, on each process; the choice and its reason are printed once, and ``trainer.precision`` says it.

    It takes no settings: to force one precision, use ``trainer.precision`` instead of this plugin.
    """

    def __init__(self) -> None:
        super().__init__("bf16-mixed", device="cpu")
        self.precision = "32-true"  # until connect() sees the device
        self.reason = ""  # why it chose: set by connect()

    def connect(self, model: Any, optimizers: list[Any], lr_schedulers: list[Any]) -> Any:
        """Decide from the device of the model's parameters (a model without parameters: the CPU)."""
        parameter = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
        self.device = parameter.device.type if parameter is not None else "cpu"
        native, self.reason = native_bf16_on(self.device)
        self.precision = "bf16-mixed" if native else "32-true"
        rank_zero_info(f"Precision {self.precision} (BF16WhereNative): {self.reason}")
        return super().connect(model, optimizers, lr_schedulers)

    @contextmanager
    def forward_context(self) -> Generator[None, None, None]:
        """bf16 autocast when chosen; nothing otherwise."""
        if self.precision == "bf16-mixed":
            with self.autocast_context_manager():
                yield
        else:
            yield

    def __repr__(self) -> str:
        if not self.reason:
            return f"{type(self).__name__}(undecided: it chooses when the trainer sets up the model)"
        return f"{type(self).__name__}(chose {self.precision!r}: {self.reason})"
