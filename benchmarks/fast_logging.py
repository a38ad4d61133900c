"""Does ``FastLogging`` still pay? The L5 lesson run with and without it, interleaved in one process.

``python -m benchmarks.fast_logging [--repeats N] [--quick]``

Both sides are the L5 lesson's plain run (``tinynet("none")``: ``sine_tinynet.yaml``, TinyNet 1 -> 64 -> 64 -> 1,
500 full-batch SGD epochs, validation each epoch, test at the end, the lesson's ``RegressionFit`` and TensorBoard
logger), built by the lesson runner as ``dlbasics lesson regularization`` builds it. The side without it drops
``FastLogging`` from that trainer's callbacks, so the two runs differ in nothing else (their test losses must be
equal). Timed: fit and test; parsing the config and building the model and trainer are not. The ratio is the
median over rounds of the two back-to-back runs' ratio (without / with), as in ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlbasics.callbacks import FastLogging, RegressionFit
from dlbasics.lessons.regularization import tinynet
from dlbasics.lessons.runner import build_run

from benchmarks.report import load_average, machine_info
from benchmarks.timing import Side, Timings, interleave, quiet

SEED = 0
SIDES = ("without FastLogging", "with FastLogging")


def l5_side(out: Path, keep_fast_logging: bool, quick: bool) -> Side:
    """A side: each repeat builds a fresh L5 run (untimed) and returns its timed fit and test."""
    def prepare() -> Callable[[], dict[str, Any]]:
        run = tinynet("none")
        folder = Path(tempfile.mkdtemp(dir=out)) / "lesson_regularization"
        cli = build_run(run, folder, SEED, [RegressionFit(every_n_epochs=100)], fast=quick)
        trainer, model, data = cli.trainer, cli.model, cli.datamodule
        if not keep_fast_logging:
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, FastLogging)]
        if any(isinstance(c, FastLogging) for c in trainer.callbacks) != keep_fast_logging:
            raise RuntimeError("the lesson run's callbacks are not what this benchmark expects; update it")

        def call() -> dict[str, Any]:
            trainer.fit(model, datamodule=data)
            (tested,) = trainer.test(model, datamodule=data, verbose=False)
            return {"loss": float(tested["test/loss"]), "epochs": trainer.current_epoch}
        return call
    return prepare


def measure(repeats: int, quick: bool) -> Timings:
    """One untimed warm-up run, then ``repeats`` interleaved rounds of both sides."""
    out = Path(tempfile.mkdtemp(prefix="dlbasics-bench-fast-logging-"))
    try:
        interleave({"warm-up": l5_side(out, True, quick=True)}, 1, "warm-up")  # one-off imports and set-up
        sides = {SIDES[0]: l5_side(out, False, quick), SIDES[1]: l5_side(out, True, quick)}
        return interleave(sides, repeats, "fast_logging")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def summary(timings: Timings, command: str, start_load: str) -> str:
    """The medians, the ratio and every repeat, as lines for benchmarks/RESULTS.md."""
    without, with_ = (timings.median(side) for side in SIDES)
    ratio = timings.paired_ratio(*SIDES)
    info = machine_info(start_load)
    repeats = "; ".join(f"{side} " + ", ".join(f"{s:.2f}" for s in timings.seconds[side]) for side in SIDES)
    losses = ", ".join(f"{side} {timings.results[side]['loss']:.5g}" for side in SIDES)
    return "\n".join([
        f"- `{command}` ({info['date']}; lightning {info['lightning']}, torch {info['torch']}, "
        f"{info['cores']}, load average {info['load average (1, 5, 15 min)']}): L5 TinyNet run "
        f"({timings.results[SIDES[1]]['epochs']} epochs, fit + test) median {without:.2f} s without FastLogging, "
        f"{with_:.2f} s with it: **{ratio:.2f}x** (without/with, median of {len(timings.seconds[SIDES[0]])} "
        "paired rounds).",
        f"  - seconds per repeat: {repeats}; test loss: {losses}",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fast_logging", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default: 7)")
    p.add_argument("--quick", action="store_true", help="the lesson's fast budget (50 epochs): a smoke run")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats} must be at least 1")
    quiet()
    start_load = load_average()
    timings = measure(args.repeats, args.quick)
    command = " ".join(["python -m benchmarks.fast_logging", *(sys.argv[1:] if argv is None else argv)])
    print(summary(timings, command, start_load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
