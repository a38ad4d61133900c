"""A TensorBoard logger that writes every value but flushes the event file on a timer, not after every write."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from dlbasics.checks import check_number


class BufferedTensorBoardLogger(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger``, except that ``save`` flushes the event file at most every ``flush_every_s``.

    Lightning calls ``save`` after each write of metrics (each training and each validation epoch end); the stock
    logger then flushes the event file and checks the hyperparameters file on disk every time. For runs of
    hundreds of tiny full-batch epochs that costs about as much as the training steps (``python -m benchmarks``,
    L5). Every value is still written; TensorBoard just sees it up to ``flush_every_s`` later, and everything is
    flushed when the run ends (``finalize``).

    Args:
        save_dir: folder of the logs (as for ``TensorBoardLogger``).
        flush_every_s: the least number of seconds between two flushes; 0 flushes on every ``save`` (the stock
            behaviour).
        **kwargs: the other ``TensorBoardLogger`` arguments (``name``, ``version``, ``default_hp_metric``, ...).
    """

    def __init__(self, save_dir: str, flush_every_s: float = 5.0, **kwargs: Any) -> None:
        check_number(flush_every_s, "flush_every_s", minimum=0.0)  # seconds
        super().__init__(save_dir, **kwargs)
        self.flush_every_s = flush_every_s
        self._last_flush = float("-inf")

    @rank_zero_only
    def save(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_every_s:
            self._last_flush = now
            super().save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self._last_flush = float("-inf")  # the end of a run always flushes and writes hparams.yaml
        super().finalize(status)
