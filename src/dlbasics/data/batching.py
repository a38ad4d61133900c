"""The one batching helper: batches sliced from in-memory tensors, sharded across DDP ranks.

A per-sample ``Dataset.__getitem__`` + ``collate`` costs Python work per sample; the lessons train on
20 to 60,000 samples held in memory, so batches are index slices of whole tensors instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from dlbasics.checks import check_int, check_int_in


class ShardedBatches:
    """Index batches for one rank: a (seeded, per-epoch) permutation, sharded, then cut into batches.

    The order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed from a checkpoint sees the
    batches an uninterrupted run would have seen. Lightning calls ``set_epoch`` at each epoch start.

    Sharding: rank ``r`` of ``w`` takes positions ``r, r + w, ...`` of the (permuted) order.
    With ``pad=True`` (training) every rank gets the same number of samples, the shortest shards
    repeating the first samples of the order as ``DistributedSampler`` does, so all ranks run the same
    number of steps. With ``pad=False`` (evaluation) the shards are disjoint and cover the split exactly.

    Args:
        num_samples: size of the split.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: draw a new permutation each epoch; otherwise keep the stored order.
        seed: seed of the permutations.
        rank: this process's rank.
        world_size: number of processes.
        pad: make all shards the same length (see above).
    """

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, pad: bool = False) -> None:
        check_int(batch_size, "batch_size")
        check_int_in(rank, "rank", 0, check_int(world_size, "world_size"))
        self.num_samples, self.batch_size, self.shuffle = num_samples, batch_size, shuffle
        self.seed, self.rank, self.world_size, self.pad = seed, rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard_size(self) -> int:
        if self.pad:
            return -(-self.num_samples // self.world_size)  # ceil
        return len(range(self.rank, self.num_samples, self.world_size))

    def indices(self) -> Tensor | None:
        """This rank's sample indices for the current epoch; None means "all, in stored order"."""
        if not self.shuffle and self.world_size == 1:
            return None  # contiguous slices, no gather needed
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        if self.pad:
            total = self.shard_size() * self.world_size
            order = torch.cat([order, order[: total - self.num_samples]])
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        return -(-self.shard_size() // self.batch_size)

    def __iter__(self) -> Iterator[Tensor | slice]:
        index = self.indices()
        size = self.shard_size()
        for start in range(0, size, self.batch_size):
            stop = min(start + self.batch_size, size)
            yield slice(start, stop) if index is None else index[start:stop]


class TensorLoader:
    """Iterates ``tuple(t[batch] for t in tensors)`` for the batches of a ``ShardedBatches``.

    It is what the datamodules return from ``*_dataloader``. Lightning accepts any iterable with a
    length, and calls ``sampler.set_epoch`` at each epoch start as it does on a ``DataLoader``.

    Args:
        tensors: tensors with the same first dimension (inputs, targets, ...).
        sampler: gives the indices (or slices) of each batch.
    """

    # Lightning inspects ``sampler``/``batch_sampler`` as on a DataLoader; the batching is all in ``sampler``.
    batch_sampler = None

    def __init__(self, tensors: Sequence[Tensor], sampler: ShardedBatches) -> None:
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors must have the same length, got {sorted(sizes)}")
        self.tensors = tuple(tensors)
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        for index in self.sampler:
            yield tuple(t[index] for t in self.tensors)
