"""The lessons' small CNN: two conv blocks and an MLP head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlbasics.activations import make_activation
from dlbasics.checks import check_sizes
from dlbasics.models.components.init import check_init, initialize
from dlbasics.models.components.mlp import MLP


class SmallCNN(nn.Module):
    """``[Conv3x3(pad 1) -> (BatchNorm2d) -> activation -> MaxPool2] * len(channels) -> flatten -> MLP head``.

    With the defaults and a ``(1, 28, 28)`` input this is the L7 network: conv 1->32, conv 32->64,
    fc 3136->128, dropout, fc 128->10.

    Args:
        input_shape: ``(channels, height, width)`` of one input (linked from the datamodule).
        num_outputs: number of outputs of the last layer (linked from the datamodule).
        channels: output channels of each conv block.
        hidden_sizes: widths of the fully connected hidden layers of the head.
        activation: registry name used after every conv and hidden layer.
        dropout: dropout probability after each hidden layer of the head.
        batch_norm: add batch norm after every conv and hidden linear layer.
        negative_slope: slope of ``leaky_relu`` for negative inputs.
        channels_last: keep the conv weights in channels-last memory format. Convolutions then give
            channels-last outputs, on which pooling is several times faster on CPU (``python -m benchmarks
            --only mnist_cnn``). Results agree with the default format to float rounding, not bitwise.
        init: weight initialization of every conv and Linear layer, as the MLP's ``init``: ``default``,
            ``constant``, ``normal``, ``xavier`` or ``kaiming`` (``dlbasics.models.components.init``).
        init_std: standard deviation of the weights with ``init: normal``.
        init_value: the value of every weight with ``init: constant``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (32, 64),
        hidden_sizes: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        negative_slope: float = 0.01,
        channels_last: bool = False,
        init: str = "default",
        init_std: float = 0.01,
        init_value: float = 0.01,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"SmallCNN needs input_shape (channels, height, width), got {tuple(input_shape)!r}")
        in_channels, height, width = check_sizes(input_shape, "input_shape")
        channels = check_sizes(channels, "channels")
        check_init(init, init_std)
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_channels))
            blocks += [make_activation(activation, negative_slope), nn.MaxPool2d(2)]
            in_channels, height, width = out_channels, height // 2, width // 2
        if height == 0 or width == 0:
            raise ValueError(f"input_shape {tuple(input_shape)!r} is too small for {len(channels)} pooling blocks")
        self.features = nn.Sequential(*blocks)
        # (B, C, H, W) -> (B, C * H * W), e.g. (B, 64, 7, 7) -> (B, 3136)
        self.head = MLP((in_channels * height * width,), num_outputs, hidden_sizes, activation, dropout,
                        batch_norm, negative_slope)
        initialize(self, init, activation, init_std, init_value, negative_slope)  # the head's layers too
        if channels_last:
            self.to(memory_format=torch.channels_last)  # changes only 4-D tensors: the conv weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
