"""Multilayer perceptron with configurable activation, dropout and batch norm."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dlbasics.activations import make_activation
from dlbasics.checks import check_probability, check_sizes


class MLP(nn.Module):
    """Fully connected network: ``[Linear -> (BatchNorm) -> activation -> (Dropout)] * hidden -> Linear``.

    Inputs of any shape ``(B, *input_shape)`` are flattened to ``(B, prod(input_shape))``. The activations are
    separate module instances, so callbacks can find and swap them through ``named_modules()``.

    Args:
        input_shape: shape of one input without the batch dimension (linked from the datamodule).
        num_outputs: number of outputs: classes or regression targets (linked from the datamodule).
        hidden_sizes: width of each hidden layer, e.g. ``[64, 64]``; empty for a linear model.
        activation: registry name of the hidden activation: sigmoid, tanh, relu, leaky_relu, elu, gelu,
            silu or identity.
        dropout: dropout probability after each hidden activation, in [0, 1); 0 disables it.
        batch_norm: add ``BatchNorm1d`` between each hidden Linear and its activation.
        negative_slope: slope of ``leaky_relu`` for negative inputs.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        width = math.prod(check_sizes(input_shape, "input_shape"))
        (num_outputs,) = check_sizes([num_outputs], "num_outputs")
        hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes", allow_empty=True)
        check_probability(dropout, "dropout")
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(make_activation(activation, negative_slope))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))  # (B, *input_shape) -> (B, in_features) -> (B, num_outputs)
