"""The dlbasics side: a lesson's own ``Run`` fitted by ``LessonContext.run``, as ``dlbasics lesson`` does; and the
``Reference`` the other sides read their budget and data from."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from dlbasics.data.base import BatchSize, TensorDataModule
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.runner import Run, RunResult, build_run

from benchmarks.timing import Side

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches")  # Trainer arguments and attributes


@dataclass
class Settings:
    """What every workload is built with.

    Args:
        quick: the lessons' fast budgets (``LessonContext(fast=True)``) on every side, for a smoke run.
        out: temporary folder for the lesson runs' logs and figures.
        data_dir: folder holding ``MNIST/raw``.
    """

    quick: bool
    out: Path
    data_dir: Path = ROOT / "data"


@dataclass
class Reference:
    """A lesson run as the benchmark times it, built once by ``build_run`` (untimed) to read its budget.

    ``data`` is that build's datamodule, prepared and set up: the raw and bare-Lightning sides train on its
    in-memory splits, so their data loading is never timed.
    """

    run: Run
    data: TensorDataModule
    max_epochs: int
    limits: dict[str, int]  # the ``limit_*_batches`` the run sets (int: a number of batches); absent: all
    sanity_batches: int  # Lightning's sanity check: validation batches run before training

    @property
    def test(self) -> bool:
        return self.run.test


def one_epoch(run: Run) -> Run:
    """The run with ``--trainer.max_epochs=1``, also after its ``--fast`` overrides (MNIST's set 2 epochs)."""
    one = "--trainer.max_epochs=1"
    return dataclasses.replace(run, overrides=(*run.overrides, one), fast=(*run.fast, one))


def capped_test(run: Run) -> Run:
    """With ``--fast``, test batches are capped where the fast budget caps validation batches (MNIST)."""
    val = [arg for arg in run.fast if arg.startswith("--trainer.limit_val_batches=")]
    test = [arg.replace("limit_val_batches", "limit_test_batches") for arg in val[-1:]]
    return dataclasses.replace(run, fast=(*run.fast, *test))


def batch_limit(value: float, name: str) -> int | None:
    """A Trainer's ``limit_*_batches`` as a number of batches (None: all of them)."""
    if isinstance(value, int):
        return value
    if value == 1.0:
        return None
    raise ValueError(f"{name}={value!r}: the raw loops take a whole number of batches or all of them (1.0)")


def reference(settings: Settings, run: Run) -> Reference:
    """Build ``run`` (its quick test cap applied) with the settings' budget; prepare and load its data."""
    run = capped_test(run)
    cli = build_run(run, settings.out / "reference" / f"lesson_{run.name}", SEED, fast=settings.quick,
                    data_dir=settings.data_dir)
    trainer, data = cli.trainer, cli.datamodule
    data.prepare_data()  # MNIST: the files on disk are ready before anything is timed
    data.setup()  # the splits stay cached in memory
    limits = {name: batch_limit(getattr(trainer, name), name) for name in LIMITS}
    return Reference(run, data, trainer.max_epochs, {k: v for k, v in limits.items() if v is not None},
                     trainer.num_sanity_val_steps)


def context(settings: Settings, lesson: str) -> LessonContext:
    """A fresh lesson context: a new ``<out>/lesson_<lesson>/version_N`` folder; one seed (one run against one
    raw loop)."""
    return LessonContext(lesson, out=settings.out, seed=SEED, seeds=1, fast=settings.quick, data_dir=settings.data_dir)


def lesson_side(settings: Settings, lesson: str, ref: Reference,
                callbacks: Callable[[], list[Callback]] = list) -> Side:
    """Each repeat makes a fresh context and callbacks (untimed); the timed call is ``ctx.run(ref.run, callbacks)`` at one seed:
    parsing the config, building model, datamodule and trainer, loading the data, fit and test."""
    def prepare() -> Callable[[], dict[str, Any]]:
        ctx, figures = context(settings, lesson), callbacks()

        def call() -> dict[str, Any]:
            result = ctx.run(ref.run, figures).first
            return {**final_metrics(result), **lesson_work(ref), "fit_s": result.seconds}
        return call
    return prepare


def final_metrics(result: RunResult) -> dict[str, float]:
    """The last evaluation's loss (and accuracy): the test metrics if the run tested, else the last val epoch."""
    stage = "test" if result.final else "val"
    return {k: result.last(f"{stage}/{k}") for k in ("loss", "acc")
            if f"{stage}/{k}" in result.final or f"{stage}/{k}" in result.curves}


def validation_split(data: TensorDataModule) -> str:
    """The split the datamodule validates on: ``val``, or ``test`` when there is no validation split."""
    return "val" if len(data.split("val")[0]) else "test"


def taken(n: int, batch_size: BatchSize, limit: int | None) -> int:
    """Samples in the first ``limit`` batches of a split of ``n`` (all of them if ``limit`` is None)."""
    size = n if batch_size == "full" else batch_size
    return n if limit is None else min(n, size * limit)


def lesson_work(ref: Reference) -> dict[str, int]:
    """Samples a lesson run trains on and evaluates (sanity check, every epoch's validation, test)."""
    data, limits = ref.data, ref.limits
    eval_batch = data.eval_batch_size or data.batch_size
    n_val = len(data.split(validation_split(data))[0])
    val_limit = limits.get("limit_val_batches")
    sanity = taken(n_val, eval_batch, min(ref.sanity_batches, val_limit or ref.sanity_batches))
    test = taken(len(data.split("test")[0]), eval_batch, limits.get("limit_test_batches")) if ref.test else 0
    train = taken(len(data.split("train")[0]), data.batch_size, limits.get("limit_train_batches"))
    return {"train_samples": ref.max_epochs * train,
            "eval_samples": sanity + ref.max_epochs * taken(n_val, eval_batch, val_limit) + test}
