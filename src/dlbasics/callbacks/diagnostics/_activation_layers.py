"""Find the registry activations inside any model, for the callbacks that swap or watch them."""

from __future__ import annotations

from torch import nn

from dlbasics.activations import activation_name


def find_activations(model: nn.Module, remove_duplicate: bool = True) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, module, registry name)`` of every registry activation below ``model``.

    Found through ``named_modules()`` only, so this works for any model. The root itself is never listed
    (it has no parent to be replaced in).

    Args:
        model: the module to search, usually the LightningModule.
        remove_duplicate: list an instance used in several places once (True), or once per place (False).
    """
    found = []
    for name, module in model.named_modules(remove_duplicate=remove_duplicate):
        kind = activation_name(module)
        if name and kind is not None:
            found.append((name, module, kind))
    return found


def describe_activations(kinds: dict[str, str], most: int = 12) -> str:
    """``"net.layers.1: tanh, net.layers.3: tanh"`` from ``{name: registry name}``, cut after ``most`` entries."""
    if not kinds:
        return "none"
    shown = ", ".join(f"{name}: {kind}" for name, kind in list(kinds.items())[:most])
    return shown if len(kinds) <= most else f"{shown}, ... ({len(kinds)} in all)"
