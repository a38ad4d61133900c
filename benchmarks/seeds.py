"""What do N seeds of a lesson run cost? One seed, N seeds one after another, and N seeds as one ``SeedEnsemble`` fit.

``python -m benchmarks.seeds [--repeats N] [--seeds N] [--quick]``

Two lesson runs, as ``dlbasics lesson`` builds them: the L4 DropNet run (``dropout.BY_RATE[0.5]``:
``toy2d_dropout.yaml``, 2 -> 32 -> 32 -> 2 ReLU, dropout 0.5, 80 full-batch epochs on 140 points) and the L5 TinyNet
run (``regularization.MAIN[0]``: ``sine_tinynet.yaml``, 1 -> 64 -> 64 -> 1 tanh, 500 full-batch epochs on 30
points, then a test). Sides: ``1 seed`` (``run_lesson_run`` at seed 0), ``sequential`` (``run_lesson_run`` at each
seed, what ``run_seeds`` did before ensembles) and ``ensemble`` (``run_ensemble``: all seeds in one fit). Timed:
everything a lesson pays, parsing the config and building the runs included. Rounds are interleaved; each ratio
is the median over rounds of the two sides' back-to-back ratio (``Timings.paired_ratio``). The target is
ensemble(N) / 1 seed <= 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlbasics.lessons.dropout import BY_RATE
from dlbasics.lessons.ensemble import run_ensemble
from dlbasics.lessons.regularization import MAIN
from dlbasics.lessons.runner import Run, run_lesson_run

from benchmarks.report import load_average, machine_info
from benchmarks.timing import Side, Timings, interleave, quiet

WORKLOADS = {"L4 DropNet (toy2d_dropout.yaml)": BY_RATE[0.5], "L5 TinyNet (sine_tinynet.yaml)": MAIN[0]}
TARGET = 2.0  # ensemble(N seeds) / 1 seed


def seeds_side(run: Run, out: Path, seeds: list[int], how: str, quick: bool) -> Side:
    """A side: each repeat gets a fresh lesson folder (untimed) and returns the timed runs of ``seeds``."""
    def prepare() -> Callable[[], dict[str, Any]]:
        folder = Path(tempfile.mkdtemp(dir=out)) / "lesson_seeds"

        def call() -> dict[str, Any]:
            if how == "ensemble":
                results = run_ensemble(run, folder, seeds, fast=quick).results
            else:
                results = [run_lesson_run(run, folder, seed, fast=quick, version=f"{run.name}/seed_{seed}")
                           for seed in seeds]
            return {"val_loss": [r.curves["val/loss"][-1] for r in results]}
        return call
    return prepare


def measure(run: Run, n_seeds: int, repeats: int, quick: bool) -> Timings:
    """One untimed warm-up of each side (at the fast budget), then ``repeats`` interleaved rounds."""
    out = Path(tempfile.mkdtemp(prefix="dlbasics-bench-seeds-"))
    seeds = list(range(n_seeds))

    def sides(fast: bool) -> dict[str, Side]:
        return {"1 seed": seeds_side(run, out, [0], "sequential", fast),
                f"{n_seeds} seeds sequential": seeds_side(run, out, seeds, "sequential", fast),
                f"{n_seeds} seeds ensemble": seeds_side(run, out, seeds, "ensemble", fast)}
    try:
        interleave({f"warm-up {name}": side for name, side in sides(True).items()}, 1, "warm-up")
        return interleave(sides(quick), repeats, run.name)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def summary(name: str, timings: Timings, n_seeds: int) -> list[str]:
    solo, sequential, ensemble = "1 seed", f"{n_seeds} seeds sequential", f"{n_seeds} seeds ensemble"
    ratio = timings.paired_ratio(ensemble, solo)
    same = timings.results[sequential]["val_loss"] == timings.results[ensemble]["val_loss"]
    repeats = "; ".join(f"{side} " + ", ".join(f"{s:.2f}" for s in seconds) for side, seconds in timings.seconds.items())
    return [f"- {name}: median {timings.median(solo):.2f} s for 1 seed, {timings.median(sequential):.2f} s for "
            f"{n_seeds} seeds one after another, {timings.median(ensemble):.2f} s as an ensemble: ensemble/1 seed "
            f"**{ratio:.2f}x** (target <= {TARGET:g}: {'met' if ratio <= TARGET else 'not met'}), sequential/ensemble "
            f"{timings.paired_ratio(sequential, ensemble):.2f}x (median of {len(timings.seconds[solo])} paired rounds)",
            f"  - seconds per repeat: {repeats}; final val/loss equal in both {n_seeds}-seed sides: {same}"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default: 5)")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the sequential and ensemble sides (default: 5)")
    p.add_argument("--quick", action="store_true", help="the lessons' fast budgets: a smoke run")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.seeds < 2:
        p.error(f"--repeats {args.repeats} must be at least 1 and --seeds {args.seeds} at least 2")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quiet()
    start_load = load_average()
    lines = []
    for name, run in WORKLOADS.items():
        lines += summary(name, measure(run, args.seeds, args.repeats, args.quick), args.seeds)
    info = machine_info(start_load)
    command = " ".join(["python -m benchmarks.seeds", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}` ({info['date']}; lightning {info['lightning']}, torch {info['torch']}, {info['cores']}, "
          f"{torch.get_num_threads()} torch threads, load average {info['load average (1, 5, 15 min)']})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
