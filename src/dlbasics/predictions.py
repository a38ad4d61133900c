"""What ``dlbasics predict`` leaves: the predictions next to the inputs they were made for, in the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor


def save_predictions(predictions: list[Tensor], trainer: Trainer, datamodule: Any) -> Path:
    """Write ``predictions.pt`` in the run folder: the predicted split's ``inputs`` and ``targets`` next to the model's
    ``outputs`` (one row per sample, in order), and say where; ``torch.load(path, weights_only=True)`` reads it."""
    outputs = torch.cat(predictions)
    record = {"outputs": outputs}
    split = getattr(datamodule, "split", None)
    if trainer.world_size == 1 and callable(split):  # under DDP each rank predicted a shard: outputs only
        inputs, targets = split("test")
        if len(inputs) == len(outputs):
            record.update(inputs=inputs, targets=targets)
    path = Path(trainer.log_dir or ".") / "predictions.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, path)
    rank_zero_info(f"Predictions: {path} ({', '.join(f'{k} {tuple(v.shape)}' for k, v in record.items())}); "
                   "read them with torch.load(path, weights_only=True)")
    return path
