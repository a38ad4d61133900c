"""In-memory LightningDataModules for the lessons' data sets."""

from dlbasics.data.base import TensorDataModule
from dlbasics.data.mnist import MNISTDataModule
from dlbasics.data.moons import MoonsDataModule
from dlbasics.data.sine import SineDataModule
from dlbasics.data.table_file import TableFileDataModule
from dlbasics.data.toy2d import Toy2DDataModule

__all__ = ["MNISTDataModule", "MoonsDataModule", "SineDataModule", "TableFileDataModule", "TensorDataModule",
           "Toy2DDataModule"]
