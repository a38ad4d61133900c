"""Lightning's own floor: the raw loop's network, loss and optimizer in the plainest LightningModule and Trainer.

No ``self.log``, no metrics, no callbacks, no logger, no checkpointing, no progress bar or model summary: what is
left is the Trainer's fixed cost per step and per epoch (hooks, loops, optimizer closure, validation set-up).
Set against the raw loop, it shows how much of the dlbasics/raw ratio of a tiny workload no code of ours can
remove; set against the dlbasics run, how much our logging, metrics and callbacks add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from benchmarks.lesson_runs import Reference
from benchmarks.timing import Side


class BareModule(L.LightningModule):
    """A network, a loss function and an optimizer factory; nothing logged."""

    def __init__(self, net: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Callable) -> None:
        super().__init__()
        self.net, self.loss_fn, self.optimizer = net, loss_fn, optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.parameters())


def bare_side(make_net: Callable[[], nn.Module], optimizer: Callable, loss_fn: Callable, ref: Reference) -> Side:
    """The lesson run's loaded data, epochs, batch limits and test, trained by a bare Trainer (CPU, one process)."""
    def call() -> dict[str, Any]:
        trainer = L.Trainer(max_epochs=ref.max_epochs, accelerator="cpu", devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=ref.sanity_batches, **ref.limits)
        module = BareModule(make_net(), loss_fn, optimizer)
        trainer.fit(module, datamodule=ref.data)
        if ref.test:
            trainer.test(module, datamodule=ref.data, verbose=False)
        return {}
    return lambda: call
