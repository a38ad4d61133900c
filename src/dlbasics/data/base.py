"""Base class of the in-memory datamodules: splits held as tensors, batches sliced by `TensorLoader`."""

from __future__ import annotations

from typing import Literal, Union

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from dlbasics.data.batching import ShardedBatches, TensorLoader
from dlbasics.loggers import label_validation_split

BatchSize = Union[int, Literal["full"]]
Split = tuple[Tensor, Tensor]  # (inputs, targets)
STAGES = ("train", "val", "test")


def check_batch_size(value: BatchSize, where: str = "batch_size") -> BatchSize:
    """Return ``value`` if it is a positive int or ``"full"``, else raise a ValueError."""
    if value == "full":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where} {value!r} must be a positive integer or 'full' (the whole split in one batch)")
    return value


class TensorDataModule(LightningDataModule):
    """A datamodule whose splits live in memory as ``(inputs, targets)`` tensors.

    Subclasses implement ``build_splits`` (and ``input_shape``/``num_outputs``); this class batches,
    shuffles deterministically per epoch and shards across DDP ranks. Inputs are float32 (or uint8
    images, converted per batch on the device); class targets are int64, regression targets float32.

    If there is no validation split, validation runs on the test split (the lessons' "test each
    epoch"), and the trainer's ``BufferedTensorBoardLogger`` tags it ``val_on_test/`` instead of ``val/``; if
    there is neither, validation is skipped.

    Args:
        batch_size: training batch size, or ``"full"`` for the whole training split in one batch.
        eval_batch_size: batch size for validation, test and predict; None uses ``batch_size``.
        seed: seed of the generated data, the splits and the per-epoch training order.
    """

    task: Literal["classification", "regression"] = "classification"

    def __init__(self, batch_size: BatchSize = 64, eval_batch_size: BatchSize | None = None, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = check_batch_size(batch_size)
        # `is not None`: a falsy 0 must be refused, not read as "same as batch_size".
        self.eval_batch_size = None if eval_batch_size is None else check_batch_size(eval_batch_size, "eval_batch_size")
        self.seed = seed
        self.splits: dict[str, Split] | None = None

    # What the model must know; linked into the model by the CLI.
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the batch dimension."""
        raise NotImplementedError

    @property
    def num_outputs(self) -> int:
        """Number of classes (classification) or of regression targets."""
        raise NotImplementedError

    def build_splits(self) -> dict[str, Split]:
        """Make the ``train``/``val``/``test`` splits; ``val`` and ``test`` may be empty."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        self._build()
        split = self.validation_split
        if split is not None:  # before any hook logs: the trainer's loggers tag validation by the split it runs on
            label_validation_split(self.trainer, split)

    def _build(self) -> None:
        if self.splits is None:
            splits = self.build_splits()
            for name in STAGES:
                check_split(name, splits[name], self.task)
            self.splits = splits

    def split(self, name: str) -> Split:
        """The ``(inputs, targets)`` of a split, building the splits on first use."""
        self._build()
        assert self.splits is not None  # set by _build
        return self.splits[name]

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    @property
    def validation_split(self) -> str | None:
        """The split validation runs on: ``"val"``, ``"test"`` when there is no validation split, or None."""
        return next((name for name in ("val", "test") if len(self.split(name)[0])), None)

    def val_dataloader(self) -> TensorLoader | list:
        name = self.validation_split
        if name is not None:
            if name == "test":
                rank_zero_info("Validation runs on the test split's points.")
            return self._loader(name, self.eval_batch_size or self.batch_size, shuffle=False)
        if self.trainer is not None and self.trainer.state.fn == "validate":  # asked to validate: say it can't
            raise ValueError(f"{type(self).__name__} has neither a validation nor a test split to validate on; "
                             "set val_fraction or test_fraction above 0")
        return []  # no validation while fitting: Lightning skips the loop

    def test_dataloader(self) -> TensorLoader:
        if not len(self.split("test")[0]):
            raise ValueError(f"{type(self).__name__} has no test split; set test_fraction above 0")
        return self._loader("test", self.eval_batch_size or self.batch_size, shuffle=False)

    def predict_dataloader(self) -> TensorLoader:
        return self.test_dataloader()

    def _loader(self, name: str, batch_size: BatchSize, shuffle: bool) -> TensorLoader:
        tensors = self.split(name)
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        size = len(tensors[0]) if batch_size == "full" else batch_size
        # Training shards are padded to equal length so every rank runs the same number of steps.
        sampler = ShardedBatches(len(tensors[0]), max(size, 1), shuffle, self.seed, rank, world_size, pad=shuffle)
        return TensorLoader(tensors, sampler)


def take_splits(x: Tensor, y: Tensor, parts: tuple[Tensor, Tensor, Tensor]) -> dict[str, Split]:
    """``{"train": (x[i], y[i]), "val": ..., "test": ...}`` from the (train, val, test) index tensors."""
    return {name: (x[index], y[index]) for name, index in zip(STAGES, parts)}


def check_split(name: str, split: Split, task: str) -> None:
    """Raise a TypeError if a split's dtypes are not the ones the models and MPS accept."""
    x, y = split
    if x.dtype not in (torch.float32, torch.uint8):
        raise TypeError(f"{name} inputs are {x.dtype}; use float32 (MPS has no float64) or uint8 images")
    want = torch.int64 if task == "classification" else torch.float32
    if y.dtype != want:
        raise TypeError(f"{name} targets are {y.dtype}; {task} needs {want}")
    if name == "train" and len(x) == 0:
        raise ValueError("the training split is empty")
