"""Callbacks about how a run runs rather than what it learns: exact resumes and cheaper logging."""

from dlbasics.callbacks.runtime.fast_logging import FastLogging
from dlbasics.callbacks.runtime.rng_state import RNGStateCheckpoint

__all__ = ["FastLogging", "RNGStateCheckpoint"]
