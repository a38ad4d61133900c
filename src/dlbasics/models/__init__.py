"""Lightning systems (loss, metrics, optimizer) around the plain networks in ``components``."""

from dlbasics.models.classifier import Classifier
from dlbasics.models.regressor import Regressor
from dlbasics.models.system import System

__all__ = ["Classifier", "Regressor", "System"]
