"""What the gradient diagnostics read of a gradient, dense or sparse."""

from __future__ import annotations

from torch import Tensor


def stored_values(tensor: Tensor) -> Tensor:
    """The stored values of a dense or sparse (e.g. ``Embedding(sparse=True)``) gradient, detached."""
    return tensor.detach().coalesce().values() if tensor.is_sparse else tensor.detach()
