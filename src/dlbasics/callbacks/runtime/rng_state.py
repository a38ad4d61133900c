"""Save the random number generators' states in checkpoints, so a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def collect_rng_states() -> dict[str, Any]:
    """The global generators' states as plain values (tensors, lists, tuples), safe for ``weights_only`` loading."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),  # uint8 tensor
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],  # the array as plain ints
        "python": random.getstate(),  # (version, tuple of ints, None)
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()  # one uint8 tensor per visible device
    if torch.backends.mps.is_available():
        states["mps"] = torch.mps.get_rng_state()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``collect_rng_states`` returned; generators it does not mention are left alone."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "mps" in states and torch.backends.mps.is_available():
        torch.mps.set_rng_state(states["mps"])


class RNGStateCheckpoint(Callback):
    """Keep the global torch (CPU, CUDA, MPS), NumPy and Python random states in checkpoints; works with any model.

    Lightning's checkpoints hold no generator state, so a resumed run draws other dropout masks (and any other
    random numbers) than the uninterrupted run would have, and ends with other weights. With this callback the
    states at the checkpoint are restored just before the resumed run's first training epoch or batch, where the
    uninterrupted run continued from them. Loading happens earlier (before the sanity check and ``on_fit_start``),
    so anything that draws random numbers in between does not shift the training draws.

    A resumed run is then bitwise identical on CPU if its batches are too: the ``dlbasics`` datamodules' order
    depends only on ``(seed, epoch)``; a ``DataLoader(shuffle=True)`` without a ``generator`` draws its order from
    the global generator when its iterator is made, which Lightning does at a different time when resuming.
    Under DDP every rank restores rank zero's state; they coincide when every rank draws the same amount, as with
    ``seed_everything`` and equal shards. The states are plain tensors, lists and tuples, so checkpoints still
    load with ``torch.load(path, weights_only=True)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._restore()  # a checkpoint saved mid-epoch resumes with no on_train_epoch_start

    def state_dict(self) -> dict[str, Any]:
        # Loaded but not restored yet (a checkpoint saved before the first batch): keep what was loaded.
        return self._pending if self._pending is not None else collect_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def _restore(self) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None
