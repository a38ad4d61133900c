"""Callbacks that watch (and, for the activations lesson, change) how any LightningModule trains.

Gradient flow per layer, update sizes per input column, activation statistics, scheduled activation swaps, weight and
gradient histograms, and a guard against non-finite losses and gradients. The modules with a leading underscore are their helpers (sums kept on the device, figures).
"""

from dlbasics.callbacks.diagnostics.activation_stats import ActivationStats
from dlbasics.callbacks.diagnostics.activation_swap import ActivationSwap, Swap
from dlbasics.callbacks.diagnostics.gradient_flow import GradientFlowMonitor, GradientFlowWarning
from dlbasics.callbacks.diagnostics.histograms import WeightHistograms
from dlbasics.callbacks.diagnostics.non_finite import NonFiniteError, NonFiniteGuard
from dlbasics.callbacks.diagnostics.update_size import UpdateSizeMonitor

__all__ = ["ActivationStats", "ActivationSwap", "GradientFlowMonitor", "GradientFlowWarning", "NonFiniteError",
           "NonFiniteGuard", "Swap", "UpdateSizeMonitor", "WeightHistograms"]
