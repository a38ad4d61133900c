"""Plain ``nn.Module`` networks, with no Lightning in them."""

from dlbasics.models.components.cnn import SmallCNN
from dlbasics.models.components.mlp import MLP

__all__ = ["MLP", "SmallCNN"]
