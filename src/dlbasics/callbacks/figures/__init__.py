"""Callbacks that draw what a model does as it trains, for any LightningModule, as TensorBoard images and PNGs.

``FigureCallback`` (``base.py``) is their base class: it routes Lightning's per-stage hooks to ``stage_start``,
``stage_batch`` and ``stage_end``; ``DecisionBoundary`` and ``NeuronMaps``, the figures over a 2-D input plane, share
``PlaneFigure`` (``_plane.py``). ``fit_figure`` redraws ``RegressionFit.last`` with several runs' curves.
"""

from dlbasics.callbacks.figures.base import FigureCallback
from dlbasics.callbacks.figures.confusion_matrix import ConfusionMatrix
from dlbasics.callbacks.figures.decision_boundary import DecisionBoundary
from dlbasics.callbacks.figures.feature_maps import FeatureMaps
from dlbasics.callbacks.figures.misclassified import Misclassified
from dlbasics.callbacks.figures.neuron_maps import NeuronMaps
from dlbasics.callbacks.figures.regression_fit import RegressionFit, fit_figure

__all__ = ["ConfusionMatrix", "DecisionBoundary", "FeatureMaps", "FigureCallback", "Misclassified", "NeuronMaps",
           "RegressionFit", "fit_figure"]
