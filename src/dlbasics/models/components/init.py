"""Weight initialization schemes for the networks' Linear and conv layers, by name (the networks' ``init``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from dlbasics.activations import check_activation
from dlbasics.checks import check_choice, check_number

INITS = ("default", "constant", "normal", "xavier", "kaiming")

# Registry activation -> the nonlinearity name torch.nn.init.calculate_gain knows. ELU, GELU and SiLU have no gain
# there; they are ReLU-like for positive inputs and take ReLU's gain, an approximation.
GAIN_NAMES = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "leaky_relu": "leaky_relu", "elu": "relu",
              "gelu": "relu", "silu": "relu", "identity": "linear"}

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def check_init(init: str, init_std: float, where: str = "init") -> str:
    """``init`` if it is a scheme of ``INITS`` and ``init_std`` is a positive number, else a ValueError naming them."""
    check_choice(init, where, INITS)
    if check_number(init_std, "init_std", minimum=0.0) == 0.0:
        raise ValueError("init_std 0.0 must be > 0: a normal init with std 0 is init 'constant' with init_value 0")
    return init


def initialize(network: nn.Module, init: str, activation: str, init_std: float = 0.01, init_value: float = 0.01,
               negative_slope: float = 0.01) -> None:
    """Re-initialize every Linear and conv layer of ``network`` in place; ``default`` leaves PyTorch's own init.

    With any other scheme the biases are set to 0 and each weight ``W`` of shape ``(fan_out, fan_in, *kernel)``
    (``fan_in`` = inputs x kernel size) is drawn as:

    - ``constant``: every weight ``init_value``; all units of a layer compute the same thing and get the same
      gradient, so training never makes them differ (the symmetry is never broken).
    - ``normal``: ``N(0, init_std^2)`` whatever the layer's size.
    - ``xavier`` (Glorot): ``N(0, gain^2 * 2 / (fan_in + fan_out))``.
    - ``kaiming`` (He): ``N(0, gain^2 / fan_in)``.

    ``gain`` is ``torch.nn.init.calculate_gain`` of the activation (``GAIN_NAMES``): 5/3 for tanh, sqrt(2) for
    relu, sqrt(2 / (1 + slope^2)) for leaky_relu, 1 for sigmoid and identity. Every layer, the output one too, gets
    the same scheme and gain.

    Args:
        network: the module whose ``nn.Linear`` and ``nn.Conv1d/2d/3d`` layers are re-initialized.
        init: one of ``INITS``.
        activation: registry name of the network's hidden activation, for the gain.
        init_std: the standard deviation of ``normal``.
        init_value: the value of every weight with ``constant``.
        negative_slope: slope of ``leaky_relu`` for negative inputs, for its gain.
    """
    check_init(init, init_std)
    check_number(init_value, "init_value")
    if init == "default":
        return  # draws no random numbers: the weights are bitwise those of a network without the option
    gain_name = GAIN_NAMES[check_activation(activation)]
    gain = nn.init.calculate_gain(gain_name, negative_slope if gain_name == "leaky_relu" else None)
    with torch.no_grad():
        for module in network.modules():
            if not isinstance(module, WEIGHTED):
                continue
            weight = module.weight
            fan_out, fan_in = weight.shape[0], math.prod(weight.shape[1:])
            if init == "constant":
                weight.fill_(init_value)
            else:
                std = {"normal": init_std, "xavier": gain * math.sqrt(2.0 / (fan_in + fan_out)),
                       "kaiming": gain / math.sqrt(fan_in)}[init]
                weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
