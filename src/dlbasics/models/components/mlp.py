"""Multilayer perceptron with configurable activation, dropout, batch or layer norm, and residual connections."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dlbasics.activations import make_activation
from dlbasics.checks import check_probability, check_sizes
from dlbasics.models.components.init import check_init, initialize


class Residual(nn.Module):
    """A skip connection around a block that keeps the width: ``x + block(x)``.

    Args:
        block: the wrapped module; its output must have the shape of its input.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (B, F) -> (B, F)


class MLP(nn.Module):
    """Fully connected network: ``[Linear -> (BatchNorm | LayerNorm) -> activation -> (Dropout)] * hidden -> Linear``.

    Inputs of any shape ``(B, *input_shape)`` are flattened to ``(B, prod(input_shape))``. The activations are
    separate module instances, so callbacks can find and swap them through ``named_modules()``.

    Without ``residual`` the modules are one flat ``nn.Sequential``: ``layers.0`` (the first Linear), ``layers.1``,
    ... . With ``residual`` each hidden block (its Linear, norm, activation and dropout) is one entry of
    ``layers``: a block whose input and output widths are equal is ``Residual(block)`` and computes
    ``x + block(x)`` (its Linear is ``layers.<i>.block.0``); a block that changes the width has no skip (its
    Linear is ``layers.<i>.0``). For 6 hidden layers of 32 on 2 inputs, blocks 2-6 get skips and the first,
    2 -> 32, does not. The output Linear never has one.

    Args:
        input_shape: shape of one input without the batch dimension (linked from the datamodule).
        num_outputs: number of outputs: classes or regression targets (linked from the datamodule).
        hidden_sizes: width of each hidden layer, e.g. ``[64, 64]``; empty for a linear model.
        activation: registry name of the hidden activation: sigmoid, tanh, relu, leaky_relu, elu, gelu,
            silu or identity.
        dropout: dropout probability after each hidden activation, in [0, 1); 0 disables it.
        batch_norm: add ``BatchNorm1d`` between each hidden Linear and its activation (normalizes each unit over
            the batch; in eval mode with the running statistics).
        layer_norm: add ``LayerNorm`` between each hidden Linear and its activation instead (normalizes each
            example over the layer's units; the same in train and eval mode). Not together with ``batch_norm``.
        residual: add a skip connection ``x + block(x)`` around every hidden block whose input and output widths
            are equal (see above); refused when no block has equal widths.
        negative_slope: slope of ``leaky_relu`` for negative inputs.
        init: weight initialization of every Linear layer (``dlbasics.models.components.init``): ``default``
            (PyTorch's own), ``constant`` (every weight ``init_value``), ``normal`` (std ``init_std``),
            ``xavier`` (Glorot) or ``kaiming`` (He), the last two with the gain of ``activation``; all but
            ``default`` set the biases to 0.
        init_std: standard deviation of the weights with ``init: normal``.
        init_value: the value of every weight with ``init: constant``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        layer_norm: bool = False,
        residual: bool = False,
        negative_slope: float = 0.01,
        init: str = "default",
        init_std: float = 0.01,
        init_value: float = 0.01,
    ) -> None:
        super().__init__()
        width = math.prod(check_sizes(input_shape, "input_shape"))
        (num_outputs,) = check_sizes([num_outputs], "num_outputs")
        hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes", allow_empty=True)
        check_probability(dropout, "dropout")
        check_init(init, init_std)
        if batch_norm and layer_norm:
            raise ValueError("MLP got batch_norm=True and layer_norm=True; each hidden layer takes one "
                             "normalization: set one of them to false")
        widths = list(zip([width, *hidden_sizes], hidden_sizes))  # (in, out) of each hidden block
        if residual and not any(n_in == n_out for n_in, n_out in widths):
            blocks = ", ".join(f"{n_in} -> {n_out}" for n_in, n_out in widths) or "none"
            raise ValueError(f"MLP got residual=True, but no hidden block keeps its width, so none can take a skip "
                             f"connection x + block(x): hidden_sizes {hidden_sizes} on {width} inputs gives blocks "
                             f"{blocks}. Repeat a width (e.g. hidden_sizes [32, 32]) or set residual to false")
        layers: list[nn.Module] = []
        for n_in, n_out in widths:
            block: list[nn.Module] = [nn.Linear(n_in, n_out)]
            if batch_norm:
                block.append(nn.BatchNorm1d(n_out))
            if layer_norm:
                block.append(nn.LayerNorm(n_out))
            block.append(make_activation(activation, negative_slope))
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            if not residual:
                layers += block  # flat: layers.0, layers.1, ... as every checkpoint so far names them
            elif n_in == n_out:
                layers.append(Residual(nn.Sequential(*block)))
            else:
                layers.append(nn.Sequential(*block))
        layers.append(nn.Linear(hidden_sizes[-1] if hidden_sizes else width, num_outputs))
        self.layers = nn.Sequential(*layers)
        initialize(self, init, activation, init_std, init_value, negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))  # (B, *input_shape) -> (B, in_features) -> (B, num_outputs)
