"""The x positions Lightning gives what ``self.log`` writes, for callbacks whose scalars share a run's charts.

Lightning logs a training batch's ``on_step`` metrics at the number of batches that stepped an optimizer before it
(0 for the first), and an epoch's ``on_epoch`` metrics at its last batch's step, so ``train/loss`` of a full-batch
run starts at step 0. ``trainer.global_step`` is one ahead of both in ``on_train_batch_end`` and
``on_train_epoch_end``; a callback logging at it would draw its curve one step to the right of ``train/``'s.
"""

from __future__ import annotations

from lightning.pytorch import Trainer

__all__ = ["batch_step", "epoch_step"]


def _stepped_batches(trainer: Trainer) -> int:
    # Lightning's own count (its LearningRateMonitor logs at it too); global_step where a trainer has none.
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    return int(getattr(loop, "_batches_that_stepped", trainer.global_step))


def batch_step(trainer: Trainer) -> int:
    """From ``on_train_batch_end``: the step Lightning logs this batch's ``on_step`` metrics at."""
    return _stepped_batches(trainer)


def epoch_step(trainer: Trainer) -> int:
    """From ``on_train_epoch_end``: the step Lightning logs this epoch's ``on_epoch`` training metrics at."""
    return max(_stepped_batches(trainer) - 1, 0)
