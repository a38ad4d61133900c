"""dlbasics: deep-learning fundamentals as PyTorch Lightning experiments."""

__version__ = "0.1.0"
