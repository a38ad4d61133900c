"""The one activation registry: every network and callback builds activations by name here."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

# Name -> factory taking the LeakyReLU slope (ignored by the others), so every entry builds the same way.
ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "sigmoid": lambda slope: nn.Sigmoid(),
    "tanh": lambda slope: nn.Tanh(),
    "relu": lambda slope: nn.ReLU(),
    "leaky_relu": lambda slope: nn.LeakyReLU(negative_slope=slope),
    "elu": lambda slope: nn.ELU(),
    "gelu": lambda slope: nn.GELU(),
    "silu": lambda slope: nn.SiLU(),
    "identity": lambda slope: nn.Identity(),
}

# The module class each name builds, so callbacks can recognise activations inside any model.
ACTIVATION_TYPES: dict[str, type[nn.Module]] = {name: type(make(0.01)) for name, make in ACTIVATIONS.items()}


def check_activation(name: str, where: str = "activation") -> str:
    """Return ``name`` if it is in the registry, else raise a ValueError listing the valid names."""
    if name not in ACTIVATIONS:
        valid = ", ".join(ACTIVATIONS)
        raise ValueError(f"{where} {name!r} is not one of: {valid}")
    return name


def make_activation(name: str, negative_slope: float = 0.01) -> nn.Module:
    """Build a fresh activation module.

    Args:
        name: registry name, one of ``ACTIVATIONS``.
        negative_slope: slope for ``x < 0`` of ``leaky_relu``; ignored by the other activations.
    """
    return ACTIVATIONS[check_activation(name)](negative_slope)


def activation_name(module: nn.Module) -> str | None:
    """Registry name of an activation module, or None if ``module`` is not a registry activation."""
    for name, cls in ACTIVATION_TYPES.items():
        if type(module) is cls:
            return name
    return None
