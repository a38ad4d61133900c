"""What the figure callbacks share: a stage's batches, the model's outputs, rows gathered from every rank, checks.

Under DDP each process sees a disjoint shard of an evaluation split (of possibly different sizes). A ``Collector``
keeps this process's rows on the CPU; ``gather`` (a collective: call it on every rank) merges every rank's rows,
so each sample counts exactly once, in the order one process would have seen them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

Rows = dict[str, Tensor]  # column name -> (N, ...) tensor, the same N for every column


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} {value!r} must be an integer >= {minimum}")
    return value


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of: {', '.join(allowed)}")
    return value


def is_due(trainer: Trainer, every_n_epochs: int) -> bool:
    """Whether a figure is due at this epoch's end: every ``every_n_epochs`` epochs while fitting, always otherwise.

    Never during the sanity check (a couple of validation batches before training).
    """
    if trainer.sanity_checking:
        return False
    return trainer.state.fn != "fit" or (trainer.current_epoch + 1) % every_n_epochs == 0


def points_needed(trainer: Trainer, every_n_epochs: int, have_points: bool) -> bool:
    """Whether a figure callback must gather this epoch's points (decide at the stage's start).

    Outside fitting, always. While fitting: when a figure is due, in the last epoch (for the end-of-training figure),
    or while the callback holds no points yet (the end-of-training figure's fallback if training stops early). The
    epochs in between skip the per-batch copies and the gather (a collective under DDP; every rank decides alike).
    """
    if trainer.sanity_checking:
        return False
    if trainer.state.fn != "fit" or not have_points or is_due(trainer, every_n_epochs):
        return True
    max_epochs = trainer.max_epochs
    return max_epochs is not None and max_epochs > 0 and trainer.current_epoch >= max_epochs - 1


def split_batch(batch: Any, who: str) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` of a batch ``(inputs, targets, ...)``; a TypeError that names ``who`` otherwise."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and all(isinstance(t, Tensor) for t in batch[:2]):
        return batch[0], batch[1]
    kind = type(batch).__name__ if not isinstance(batch, (tuple, list)) else f"{type(batch).__name__} of {len(batch)}"
    raise TypeError(f"{who} needs batches (inputs, targets, ...) whose first two items are tensors, got a {kind}; "
                    "make the dataloader yield (x, y) tuples")


def forward_eval(pl_module: LightningModule, x: Tensor) -> Tensor:
    """``pl_module(x)`` in eval mode without gradients, then every submodule back in its previous mode."""
    modes = [(module, module.training) for module in pl_module.modules()]
    pl_module.eval()
    try:
        with torch.no_grad():
            out = pl_module(x.to(pl_module.device))
    finally:
        for module, training in modes:  # per module: a frozen (eval) submodule stays frozen
            module.training = training
    if not isinstance(out, Tensor):
        raise TypeError(f"{type(pl_module).__name__}.forward returned a {type(out).__name__}; the figure callbacks "
                        "need forward(x) to return one tensor of outputs (logits or predictions)")
    return out


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
        part["key"] = part["position"].double() if key is None else key.detach().cpu().double()
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


class StageHooks(Callback):
    """Lightning's per-stage hooks routed to three methods, so each figure callback writes its logic once.

    ``stage_start`` at each epoch start, ``stage_batch`` after each batch (with the batch as the model received
    it, after ``on_after_batch_transfer``) and ``stage_end`` at each epoch end, for ``stage`` ``train``, ``val``
    (the sanity check included: check ``trainer.sanity_checking``) and ``test``. They do nothing by default.
    """

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """An epoch of ``stage`` starts."""

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        """A batch of ``stage`` went through the model."""

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """An epoch of ``stage`` ends; under DDP every rank gets here, so collectives are safe."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stage_start(trainer, pl_module, "train")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.stage_batch(trainer, pl_module, "train", batch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stage_end(trainer, pl_module, "train")

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stage_start(trainer, pl_module, "val")

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self.stage_batch(trainer, pl_module, "val", batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stage_end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stage_start(trainer, pl_module, "test")

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self.stage_batch(trainer, pl_module, "test", batch)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stage_end(trainer, pl_module, "test")
