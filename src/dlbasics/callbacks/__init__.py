"""Callbacks that work with any LightningModule: they find layers through ``named_modules()``, never by our names.

- ``diagnostics/``: how training goes: ``GradientFlowMonitor`` (warning with ``GradientFlowWarning``),
  ``ActivationStats``, ``ActivationSwap`` with its ``Swap`` schedule entries, ``NonFiniteGuard`` (raising
  ``NonFiniteError``), ``UpdateSizeMonitor`` (how far each step moves the weights), ``WeightHistograms``
  (TensorBoard histograms of each layer's weights and gradients).
- ``figures/``: what the model does, drawn as it trains: ``DecisionBoundary``, ``RegressionFit`` (and
  ``fit_figure``), ``ConfusionMatrix``, ``Misclassified``, ``FeatureMaps``, ``NeuronMaps`` (each hidden unit over the
  input plane), on the base class ``FigureCallback``.
- ``runtime/``: how a run runs: ``RNGStateCheckpoint`` (bitwise resumes), ``FastLogging`` (cheaper ``self.log``).

Import them from here (``dlbasics.callbacks.GradientFlowMonitor``, as the YAML configs name them); the
subpackages are the layout, not the interface.

A callback that must refuse its settings before anything is written defines
``check_before_run(trainer: Trainer, pl_module: LightningModule) -> None``, raising a ``ValueError`` that says what
to change. ``dlbasics fit`` calls it, for every callback of the trainer that has it, once the trainer and the model
are built and before the run folder exists; the callback may check again in its own hooks (runs without the CLI,
resumed runs). ``ActivationSwap``, ``ActivationStats``, ``GradientFlowMonitor``, ``WeightHistograms``, ``FeatureMaps``
and ``NeuronMaps`` have it.
"""

from dlbasics.callbacks.diagnostics import (ActivationStats, ActivationSwap, GradientFlowMonitor, GradientFlowWarning,
                                            NonFiniteError, NonFiniteGuard, Swap, UpdateSizeMonitor, WeightHistograms)
from dlbasics.callbacks.figures import (ConfusionMatrix, DecisionBoundary, FeatureMaps, Misclassified, NeuronMaps,
                                        RegressionFit)
from dlbasics.callbacks.runtime import FastLogging, RNGStateCheckpoint

__all__ = ["ActivationStats", "ActivationSwap", "ConfusionMatrix", "DecisionBoundary", "FastLogging", "FeatureMaps",
           "GradientFlowMonitor", "GradientFlowWarning", "Misclassified", "NeuronMaps", "NonFiniteError",
           "NonFiniteGuard", "RegressionFit", "RNGStateCheckpoint", "Swap", "UpdateSizeMonitor",
           "WeightHistograms"]
