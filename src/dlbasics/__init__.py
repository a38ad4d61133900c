"""dlbasics: deep-learning fundamentals as PyTorch Lightning experiments."""

from dlbasics import distributed as _distributed  # noqa: F401 (registers the exit-time release)

__version__ = "0.1.0"
