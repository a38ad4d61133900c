"""The small lessons (L1-L5) at their default 5 seeds against the same lessons at one seed, side by side.

``python -m benchmarks.lesson_seeds [--repeats N] [--quick]``

Each side is ``dlbasics lesson activations backprop overfitting dropout regularization`` in this process, with
``--seeds 1`` or with the default seeds (5, each variant's seeds trained as one seed ensemble), into a fresh folder.
Timed: the whole command (every run, figure and summary). The target of issue 10 is 5 seeds / 1 seed <= 2. A round
takes about 7 minutes on 2 cores; the ratio is the median over rounds of the back-to-back ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlbasics.lessons.cli import lesson_main

from benchmarks.report import load_average, machine_info
from benchmarks.timing import Side, interleave

SMALL_LESSONS = ("activations", "backprop", "overfitting", "dropout", "regularization")
TARGET = 2.0


def lessons_side(out: Path, extra: list[str]) -> Side:
    def prepare() -> Callable[[], dict[str, Any]]:
        folder = Path(tempfile.mkdtemp(dir=out))

        def call() -> dict[str, Any]:
            with contextlib.redirect_stdout(io.StringIO()):
                status = lesson_main([*SMALL_LESSONS, "--out", str(folder), *extra])
            if status != 0:
                raise RuntimeError(f"dlbasics lesson exited {status}")
            return {}
        return call
    return prepare


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lesson_seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds (default: 1, about 7 minutes)")
    p.add_argument("--quick", action="store_true", help="the lessons' fast budgets: a smoke run")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats} must be at least 1")
    start_load = load_average()
    out = Path(tempfile.mkdtemp(prefix="dlbasics-bench-lesson-seeds-"))
    fast = ["--fast"] if args.quick else []
    try:
        timings = interleave({"1 seed": lessons_side(out, ["--seeds", "1", *fast]),
                              "5 seeds": lessons_side(out, fast)}, args.repeats, "L1-L5")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    info = machine_info(start_load)
    ratio = timings.paired_ratio("5 seeds", "1 seed")
    command = " ".join(["python -m benchmarks.lesson_seeds", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}` ({info['date']}; lightning {info['lightning']}, torch {info['torch']}, {info['cores']}, "
          f"load average {info['load average (1, 5, 15 min)']})")
    print(f"- L1-L5 lessons: median {timings.median('1 seed'):.1f} s at 1 seed, {timings.median('5 seeds'):.1f} s "
          f"at 5 seeds: **{ratio:.2f}x** (target <= {TARGET:g}: {'met' if ratio <= TARGET else 'not met'}; "
          f"{args.repeats} round{'s' if args.repeats > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
