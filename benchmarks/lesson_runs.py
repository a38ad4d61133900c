"""The dlbasics side: a lesson's own variant builder run by the lesson's own runner, as ``dlbasics lesson`` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from dlbasics.data.base import BatchSize, TensorDataModule
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.runner import RunResult, Variant

from benchmarks.timing import Side

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
SANITY_VAL_BATCHES = 2  # Lightning's num_sanity_val_steps default: validation batches run before training

Build = Callable[[LessonContext], Variant]


@dataclass
class Settings:
    """What every workload is built with.

    Args:
        quick: the lessons' fast budgets (``LessonContext(fast=True)``) on both sides, for a smoke run.
        out: temporary folder for the lesson runs' logs and figures.
        data_dir: folder holding ``MNIST/raw``.
    """

    quick: bool
    out: Path
    data_dir: Path = ROOT / "data"


def context(settings: Settings, lesson: str) -> LessonContext:
    """A fresh lesson context: a new ``<out>/lesson_<lesson>/version_N`` folder."""
    return LessonContext(lesson, out=settings.out, seed=SEED, fast=settings.quick, data_dir=settings.data_dir)


def build_variant(settings: Settings, ctx: LessonContext, build: Build) -> Variant:
    """The lesson's variant; with ``quick``, test batches are capped where the fast budget caps validation (MNIST)."""
    variant = build(ctx)
    limits = variant.trainer_kwargs
    if settings.quick and "limit_val_batches" in limits:
        limits.setdefault("limit_test_batches", limits["limit_val_batches"])
    return variant


def reference(settings: Settings, lesson: str, build: Build) -> Variant:
    """A variant built once, to read its budget and to hold its datamodule, loaded before anything is timed."""
    variant = build_variant(settings, context(settings, lesson), build)
    variant.data.prepare_data()
    variant.data.setup()  # the splits stay cached in memory: loading is never timed
    return variant


def lesson_side(settings: Settings, lesson: str, build: Build, data: TensorDataModule,
                extra_callbacks: Callable[[], list[Callback]] = list) -> Side:
    """Each repeat builds a fresh context and variant (sharing the loaded ``data``); ``ctx.run`` is what is timed."""
    def prepare() -> Callable[[], dict[str, Any]]:
        ctx = context(settings, lesson)
        variant = build_variant(settings, ctx, build)
        variant.data = data
        variant.callbacks = [*variant.callbacks, *extra_callbacks()]

        def call() -> dict[str, Any]:
            return {**final_metrics(ctx.run(variant)), **lesson_work(variant)}
        return call
    return prepare


def final_metrics(result: RunResult) -> dict[str, float]:
    """The last evaluation's loss (and accuracy): the test metrics if the variant tested, else the last val epoch."""
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


def lesson_work(variant: Variant) -> dict[str, int]:
    """Samples a lesson run trains on and evaluates (sanity check, every epoch's validation, test)."""
    data, limits = variant.data, variant.trainer_kwargs
    eval_batch = data.eval_batch_size or data.batch_size
    n_val = len(data.split(validation_split(data))[0])
    val_limit = limits.get("limit_val_batches")
    sanity = taken(n_val, eval_batch, min(SANITY_VAL_BATCHES, val_limit or SANITY_VAL_BATCHES))
    test = taken(len(data.split("test")[0]), eval_batch, limits.get("limit_test_batches")) if variant.test else 0
    return {"train_samples": variant.max_epochs * taken(len(data.split("train")[0]), data.batch_size,
                                                        limits.get("limit_train_batches")),
            "eval_samples": sanity + variant.max_epochs * taken(n_val, eval_batch, val_limit) + test}
