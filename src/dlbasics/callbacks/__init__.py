"""Callbacks that work with any LightningModule (they find layers via ``named_modules()``).

Diagnostics: gradient flow, activation swaps and statistics, a non-finite guard. Speed: cheaper ``self.log``.
Figures: decision boundaries, regression fits, confusion matrices, misclassified inputs, CNN feature maps.
"""

from dlbasics.callbacks.activation_stats import ActivationStats
from dlbasics.callbacks.activation_swap import ActivationSwap, Swap
from dlbasics.callbacks.confusion_matrix import ConfusionMatrix
from dlbasics.callbacks.decision_boundary import DecisionBoundary
from dlbasics.callbacks.fast_logging import FastLogging
from dlbasics.callbacks.feature_maps import FeatureMaps
from dlbasics.callbacks.gradient_flow import GradientFlowMonitor
from dlbasics.callbacks.misclassified import Misclassified
from dlbasics.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from dlbasics.callbacks.regression_fit import RegressionFit
from dlbasics.callbacks.rng_state import RNGStateCheckpoint

__all__ = ["ActivationStats", "ActivationSwap", "ConfusionMatrix", "DecisionBoundary", "FastLogging",
           "FeatureMaps", "GradientFlowMonitor", "Misclassified", "NonFiniteError", "NonFiniteGuard", "RegressionFit",
           "RNGStateCheckpoint", "Swap"]
