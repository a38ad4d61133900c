"""Run a lesson's variants as real Lightning fits and collect their per-epoch metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback, LightningModule, Trainer

from dlbasics.callbacks.fast_logging import FastLogging
from dlbasics.data.base import TensorDataModule
from dlbasics.loggers import BufferedTensorBoardLogger


class MetricHistory(Callback):
    """Keep every epoch's logged metrics in memory: ``curves["val/loss"] == [epoch 0, epoch 1, ...]``.

    Read at the end of each training epoch, when ``callback_metrics`` holds the epoch's training
    aggregates and the validation that ran in that epoch (one host sync per epoch).
    """

    def __init__(self) -> None:
        self.curves: dict[str, list[float]] = {}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for name, value in trainer.callback_metrics.items():
            self.curves.setdefault(name, []).append(float(value))


@dataclass
class Variant:
    """One run of a lesson.

    Args:
        name: short name, also the run's folder and TensorBoard run name (``tanh``, ``dropout_0.5``).
        model: builds the LightningModule; called right after seeding, so variants with the same
            architecture start from the same weights.
        data: the datamodule.
        max_epochs: training epochs.
        callbacks: extra callbacks (monitors, figures) for this run.
        test: run ``trainer.test`` after fitting.
        trainer_kwargs: other ``Trainer`` arguments (e.g. ``limit_train_batches`` in fast mode).
    """

    name: str
    model: Callable[[], LightningModule]
    data: TensorDataModule
    max_epochs: int
    callbacks: Sequence[Callback] = ()
    test: bool = False
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """What a variant's run left: per-epoch curves, final metrics, and the live objects for plots."""

    name: str
    curves: dict[str, list[float]]
    final: dict[str, float]
    model: LightningModule
    data: TensorDataModule
    callbacks: Sequence[Callback]
    log_dir: Path
    seconds: float

    def tail_mean(self, metric: str, epochs: int = 10) -> float:
        """Mean of the metric over the last ``epochs`` epochs: steadier than the last value of a noisy curve."""
        values = self.curves[metric][-epochs:]
        return sum(values) / len(values)

    def last(self, metric: str) -> float:
        """The metric's final value: a test metric, or the last epoch's value of a curve."""
        if metric in self.final:
            return self.final[metric]
        return self.curves[metric][-1]


def run_variant(variant: Variant, lesson_dir: Path, seed: int, accelerator: str = "cpu") -> RunResult:
    """Seed, build, fit (and test) one variant, logging to ``<lesson_dir>/<variant.name>/``."""
    L.seed_everything(seed, verbose=False)
    model = variant.model()
    history = MetricHistory()
    # Every value is logged; the event file is flushed every few seconds instead of twice per epoch.
    logger = BufferedTensorBoardLogger(save_dir=str(lesson_dir.parent), name=lesson_dir.name, version=variant.name,
                                       default_hp_metric=False)
    trainer = L.Trainer(
        max_epochs=variant.max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=logger,
        callbacks=[history, FastLogging(), *variant.callbacks],  # FastLogging: a quarter of a tiny full-batch run
        enable_checkpointing=False,  # lessons compare curves; checkpoints would only cost time
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **variant.trainer_kwargs,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=variant.data)
    final: dict[str, float] = {}
    if variant.test:
        (tested,) = trainer.test(model, datamodule=variant.data, verbose=False)
        final = {name: float(value) for name, value in tested.items()}
    return RunResult(variant.name, history.curves, final, model, variant.data, variant.callbacks,
                     Path(logger.log_dir), time.perf_counter() - start)
