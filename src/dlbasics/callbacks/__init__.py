"""Diagnostic callbacks that work with any LightningModule (they find layers via ``named_modules()``)."""

from dlbasics.callbacks.activation_stats import ActivationStats
from dlbasics.callbacks.activation_swap import ActivationSwap, Swap
from dlbasics.callbacks.gradient_flow import GradientFlowMonitor
from dlbasics.callbacks.non_finite import NonFiniteError, NonFiniteGuard

__all__ = ["ActivationStats", "ActivationSwap", "GradientFlowMonitor", "NonFiniteError", "NonFiniteGuard", "Swap"]
