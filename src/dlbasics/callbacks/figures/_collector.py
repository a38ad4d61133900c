"""Rows of a stage's batches kept on each rank and merged across DDP ranks, for the figure callbacks.

Under DDP each process sees a disjoint shard of an evaluation split (of possibly different sizes). A ``Collector``
keeps this process's rows on the CPU; ``gather`` (a collective: call it on every rank) merges every rank's rows,
so each sample counts exactly once, in the order one process would have seen them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Trainer
from torch import Tensor

Rows = dict[str, Tensor]  # column name -> (N, ...) tensor, the same N for every column


def _sort(key: Tensor, position: Tensor) -> Tensor:
    """Indices ordering rows by ``key``, ties by ``position``."""
    by_position = torch.argsort(position)
    return by_position[torch.argsort(key[by_position], stable=True)]


class Collector:
    """Rows of a stage's batches on this rank (detached, on the CPU); ``gather`` merges those of every rank.

    Each row offered to ``add`` gets a *position*: ``local index * world_size + rank``. With the interleaved
    sharding of evaluation splits (``DistributedSampler``, the dlbasics loaders) that is the row's index in the
    whole split, so gathered rows come back in a single process's order whatever the number of processes.
    (Training shards are shuffled and padded, so there positions are only an order and a few rows repeat.)

    Args:
        limit: keep only the ``limit`` rows with the smallest key (on each rank as batches come, and overall
            after ``gather``); None keeps every row.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.counts = {"seen": 0, "matched": 0}  # summed over ranks by `gather`
        self.reset()

    def reset(self) -> None:
        self._parts: list[Rows] = []
        self._seen = self._matched = 0

    def add(self, trainer: Trainer, rows: Rows, mask: Tensor | None = None, key: Tensor | None = None) -> None:
        """Offer one batch's rows, keeping those where ``mask`` is True.

        Args:
            trainer: gives this process's rank and the number of processes.
            rows: columns of the batch, e.g. ``{"x": x, "y": y}``, all with the batch size as first dimension.
            mask: ``(B,)`` bool, the rows to keep; None keeps all.
            key: ``(B,)`` the order in which ``limit`` keeps rows, smallest first; None: the position.
        """
        n = len(next(iter(rows.values())))
        local = torch.arange(self._seen, self._seen + n, dtype=torch.int64)
        self._seen += n
        part = {name: t.detach().cpu() for name, t in rows.items()}
        part["position"] = local * trainer.world_size + trainer.global_rank
        # No float64 anywhere, on the CPU either (MPS has none): positions stay integers, given keys float32.
        part["key"] = part["position"].clone() if key is None else key.detach().cpu().float()
        # Copies (indexing or clone): a batch may be a view of the whole data set, kept (and pickled) whole otherwise.
        if mask is None:
            part = {name: t.clone() for name, t in part.items()}
        else:
            keep = mask.detach().cpu().bool()
            part = {name: t[keep] for name, t in part.items()}
        self._matched += len(part["position"])
        self._parts.append(part)
        if self.limit is not None:  # prune as we go: a rank never holds more than `limit` rows (+ one batch)
            self._parts = [self._select(self._parts)]

    def _select(self, parts: list[Rows]) -> Rows:
        """The parts merged, sorted by key then position, cut to ``limit``."""
        merged = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
        order = _sort(merged["key"], merged["position"])[: self.limit]
        return {name: t[order] for name, t in merged.items()}

    def gather(self, trainer: Trainer) -> Rows:
        """Every rank's rows, sorted by key (then position), cut to ``limit``; ``{}`` if no rank has any.

        A collective under DDP: every rank must call it, and every rank gets the same result. Also sets
        ``counts``: rows offered (``seen``) and rows that passed the mask (``matched``), over all ranks.
        """
        local = (self._parts, self._seen, self._matched)
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            # Objects, not tensors: shards may differ in length, and a rank may have no rows at all.
            everyone: list[Any] = [None] * trainer.world_size
            dist.all_gather_object(everyone, local)
        else:
            everyone = [local]
        parts = [part for rank_parts, _, _ in everyone for part in rank_parts]
        self.counts = {"seen": sum(e[1] for e in everyone), "matched": sum(e[2] for e in everyone)}
        return self._select(parts) if parts else {}
