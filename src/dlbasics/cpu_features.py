"""What this CPU can do for the maths: the instruction-set flags that decide fp32 and bf16 speed.

Read from the operating system, not assumed from the model name: ``/proc/cpuinfo``'s ``flags`` (x86) or
``Features`` (ARM) line on Linux, ``sysctl`` on macOS. ``torch.backends.cpu.get_cpu_capability()`` says which
of PyTorch's own kernels run (``AVX512``, ``AVX2``, ...); it does not say whether bf16 is native.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

# The flags that matter for matmul and convolution speed, in the order a reader compares machines by.
MATH_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
              "amx_int8", "asimd", "bf16", "i8mm", "sve")
# bf16 dot products in hardware: AVX512_BF16 or AMX-BF16 on x86, FEAT_BF16 on ARM. Without them PyTorch's CPU
# bf16 kernels convert to fp32 and back, which is slower than fp32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
MACOS_FEATURES = {"hw.optional.arm.FEAT_BF16": "bf16", "hw.optional.arm.FEAT_I8MM": "i8mm",
                  "hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f"}

__all__ = ["cpu_flags", "math_flags", "native_bf16", "native_bf16_flags"]


def parse_cpuinfo(text: str) -> set[str]:
    """The flags of the first processor in a ``/proc/cpuinfo`` text (``flags`` on x86, ``Features`` on ARM)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the operating system reports them; empty when it does not say."""
    system = platform.system()
    if system == "Linux":
        try:
            return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
        except OSError:
            return set()
    if system == "Darwin":
        found = set()
        for key, flag in MACOS_FEATURES.items():
            try:
                done = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
            except (OSError, subprocess.SubprocessError):
                continue
            if done.returncode == 0 and done.stdout.strip() == "1":
                found.add(flag)
        return found
    return set()


def math_flags(flags: set[str] | None = None) -> list[str]:
    """The flags of ``MATH_FLAGS`` this CPU has (default: ``cpu_flags()``), in ``MATH_FLAGS``' order."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in MATH_FLAGS if flag in flags]


def native_bf16_flags(flags: set[str] | None = None) -> list[str]:
    """The flags of ``NATIVE_BF16_FLAGS`` the CPU has (default: this CPU's ``cpu_flags()``), in that order."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bf16 dot products in hardware (default: this CPU's ``cpu_flags()``)."""
    return bool(native_bf16_flags(flags))
