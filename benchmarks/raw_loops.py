"""The plain PyTorch loops the lessons were written as: the baselines the dlbasics runs are timed against.

One loop serves every workload: train an epoch, evaluate, repeat, then test once. Each batch's loss
(and accuracy) is read back with ``.item()``, as the notebooks did. What differs between the "raw
tensors" and the "lesson DataLoader/torchvision" baselines is only the iterable of batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dlbasics.data.mnist import MNIST_MEAN, MNIST_STD
from dlbasics.models.components import SmallCNN

Batches = Iterable[tuple[Tensor, Tensor]]
LossFn = Callable[[Tensor, Tensor], Tensor]


class TensorBatches:
    """Batches sliced from in-memory tensors, with a new ``randperm`` order per pass when shuffled.

    The hand-written baseline for "raw tensors": the lessons' splits fit in memory, so a batch is an index
    gather (or a slice), not a per-sample ``Dataset.__getitem__`` plus ``collate``.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None = None, shuffle: bool = False) -> None:
        self.x, self.y, self.shuffle = x, y, shuffle
        self.batch_size = batch_size or len(x)  # None: the whole split in one batch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.x)) if self.shuffle else None
        for start in range(0, len(self.x), self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            yield self.x[index], self.y[index]


@dataclass
class Stage:
    """The batches of one stage, and how many of them to take (None: all; Lightning's ``limit_*_batches``)."""

    batches: Batches
    limit: int | None = None


def mnist_pixels(x: Tensor) -> Tensor:
    """(B, 1, 28, 28) uint8 -> float32 standardised, as ``MNISTDataModule`` does to each batch."""
    return x.float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)


def train_and_evaluate(net: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, epochs: int,
                       train: Stage, val: Stage | None = None, test: Stage | None = None,
                       to_input: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
    """Train ``epochs`` epochs (validating after each), then test once.

    Returns the last evaluation's ``loss`` (and ``acc`` for classification) and the number of samples
    trained on and evaluated (for the FLOP rates).
    """
    history: list[dict[str, float]] = []  # per epoch, as the notebooks kept it
    trained = evaluated = 0
    last: dict[str, float] = {}
    for _ in range(epochs):
        net.train()
        epoch = one_pass(net, loss_fn, train, to_input, optimizer)
        trained += int(epoch["samples"])
        if val is not None:
            last = evaluate(net, loss_fn, val, to_input)
            evaluated += int(last["samples"])
            epoch.update({f"val_{k}": v for k, v in last.items()})
        history.append(epoch)
    if test is not None:
        last = evaluate(net, loss_fn, test, to_input)
        evaluated += int(last["samples"])
    return {**{k: v for k, v in last.items() if k != "samples"}, "train_samples": trained,
            "eval_samples": evaluated}


def evaluate(net: nn.Module, loss_fn: LossFn, stage: Stage, to_input: Callable[[Tensor], Tensor] | None) -> dict:
    net.eval()
    with torch.no_grad():
        return one_pass(net, loss_fn, stage, to_input)


def one_pass(net: nn.Module, loss_fn: LossFn, stage: Stage, to_input: Callable[[Tensor], Tensor] | None,
             optimizer: torch.optim.Optimizer | None = None) -> dict[str, float]:
    """One pass over a stage's batches (a training step per batch if ``optimizer``): mean loss and accuracy."""
    total, correct, seen = 0.0, 0, 0
    classify = loss_fn is F.cross_entropy
    for x, y in islice(stage.batches, stage.limit):
        outputs = net(to_input(x) if to_input else x)
        loss = loss_fn(outputs, y)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        total += loss.item() * len(y)
        if classify:
            correct += (outputs.argmax(1) == y).sum().item()
        seen += len(y)
    result = {"loss": total / seen, "samples": seen}
    return {**result, "acc": correct / seen} if classify else result


# The lessons' networks, written out as the notebooks built them.

def tinynet() -> nn.Module:
    """L5 TinyNet: 1 -> 64 -> 64 -> 1, tanh."""
    return nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


def dropnet(p: float) -> nn.Module:
    """L4 DropNet: 2 -> 32 -> 32 -> 2, ReLU, dropout after each hidden layer."""
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 32), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(32, 2))


def moons_mlp() -> nn.Module:
    """L7 moons MLP: 2 -> 64 -> 64 -> 2 with batch norm, ReLU and dropout 0.1."""
    return nn.Sequential(nn.Linear(2, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 2))


def mnist_mlp() -> nn.Module:
    """L6: (B, 1, 28, 28) -> (B, 784) -> 128 ReLU -> 10."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def small_cnn() -> nn.Module:
    """L7 small CNN: the project's ``SmallCNN`` itself (conv 32, conv 64, fc 128, dropout 0.2)."""
    return SmallCNN((1, 28, 28), 10, channels=(32, 64), hidden_sizes=(128,), dropout=0.2)
