"""The base class of the figure callbacks, and what they share: when to draw, a batch's inputs and targets, and the
model's outputs in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor


def is_due(trainer: Trainer, every_n_epochs: int) -> bool:
    """Whether a figure is due at this epoch's end: every ``every_n_epochs`` epochs while fitting, always otherwise.

    Never during the sanity check (a couple of validation batches before training).
    """
    if trainer.sanity_checking:
        return False
    return trainer.state.fn != "fit" or (trainer.current_epoch + 1) % every_n_epochs == 0


def spread_every(trainer: Trainer, every_n_epochs: int, figures_per_fit: int | None) -> int:
    """``every_n_epochs``, or with ``figures_per_fit`` the interval that spreads that many figures over the fit.

    ``max_epochs // figures_per_fit`` (at least 1), so a run and its shortened ``--fast`` form both get a slider of
    about ``figures_per_fit`` steps; ``every_n_epochs`` where the trainer has no epoch budget.
    """
    max_epochs = trainer.max_epochs
    if figures_per_fit is None or max_epochs is None or max_epochs < 1:
        return every_n_epochs
    return max(1, max_epochs // figures_per_fit)


def run_tag(trainer: Trainer, stage: str) -> str:
    """What a figure's TensorBoard tag adds for the kind of run: nothing while fitting or for ``test`` figures;
    ``/<run kind>`` otherwise (``boundary/val/validate``), as a ``validate`` run after a fit has the fit's last step
    and would otherwise hide that figure in its slider."""
    fn = trainer.state.fn.value if trainer.state.fn is not None else "fit"
    return "" if fn == "fit" or stage == "test" else f"/{fn}"


def png_name(pngs: str, name: str, suffix: str) -> str:
    """The PNG file name of a figure: ``<name><suffix>`` (one file per figure) with ``pngs="every"``, or ``<name>``
    with ``pngs="last"``, overwritten by each figure so a run folder keeps only the latest (TensorBoard has all)."""
    return f"{name}{suffix}" if pngs == "every" else name


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


class FigureCallback(Callback):
    """The base of the figure callbacks: Lightning's per-stage hooks routed to three methods, so each figure callback
    writes its logic once.

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
