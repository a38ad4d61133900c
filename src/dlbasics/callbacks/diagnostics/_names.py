"""How the diagnostics name layers and parameters to the user: without torch.compile's wrapper, in short lists."""

from __future__ import annotations

from collections.abc import Sequence

# ``torch.compile(module)`` returns an ``OptimizedModule`` holding the original as its child ``_orig_mod``.
_COMPILE_WRAPPER = "_orig_mod"


def display_name(name: str) -> str:
    """``name`` without the ``_orig_mod`` parts a ``torch.compile``d submodule adds: ``net._orig_mod.0`` -> ``net.0``.

    The callbacks report, log and match their ``pattern`` settings against these names, so a layer is named the
    same whether or not its module was compiled; they keep the real names to reach the modules.
    """
    if _COMPILE_WRAPPER not in name:
        return name
    return ".".join(part for part in name.split(".") if part != _COMPILE_WRAPPER)


def shortlist(items: Sequence[str], most: int = 8) -> str:
    """``"a, b, c"``, cut after ``most`` entries with the total: ``"a, b, ... (9 in all)"``; ``"none"`` if empty."""
    if not items:
        return "none"
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown}, ... ({len(items)} in all)"
