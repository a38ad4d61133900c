"""Multilayer perceptron with configurable activation, dropout and batch norm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlbasics.activations import make_activation


def check_dropout(dropout: float) -> float:
    """Return ``dropout`` if it is a probability in [0, 1), else raise a ValueError."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout {dropout!r} must be in [0, 1)")
    return dropout


def check_sizes(sizes: Sequence[int], where: str, allow_empty: bool = False) -> list[int]:
    """Return ``sizes`` as a list if every entry is a positive int, else raise a ValueError."""
    sizes = list(sizes)
    if not sizes and not allow_empty:
        raise ValueError(f"{where} must list at least one size, got {sizes!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
        raise ValueError(f"{where} must be positive integers, got {sizes!r}")
    return sizes


class MLP(nn.Module):
    """Fully connected network: ``[Linear -> (BatchNorm) -> activation -> (Dropout)] * hidden -> Linear``.

    Inputs of any shape ``(B, *)`` are flattened to ``(B, in_features)``. The activations are separate
    module instances, so callbacks can find and swap them through ``named_modules()``.

    Args:
        in_features: size of one flattened input.
        hidden_sizes: width of each hidden layer, e.g. ``[64, 64]``; empty for a linear model.
        out_features: number of outputs (classes or regression targets).
        activation: registry name of the hidden activation (see ``dlbasics.activations``).
        dropout: dropout probability after each hidden activation; 0 disables it.
        batch_norm: add ``BatchNorm1d`` between each hidden Linear and its activation.
        negative_slope: slope of ``leaky_relu`` for negative inputs.
        bias: give the Linear layers a bias (the backprop lesson uses none).
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        negative_slope: float = 0.01,
        bias: bool = True,
    ) -> None:
        super().__init__()
        (in_features, out_features) = check_sizes([in_features, out_features], "in_features/out_features")
        hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes", allow_empty=True)
        check_dropout(dropout)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(make_activation(activation, negative_slope))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))  # (B, *) -> (B, in_features) -> (B, out_features)
