"""``dlbasics lesson``: rerun the lessons of shared/LESSONS.md."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from dlbasics.callbacks.gradient_flow import GradientFlowWarning
from dlbasics.cli import hide_lightning_noise
from dlbasics.lessons import LESSONS
from dlbasics.lessons.context import LessonContext, fmt


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dlbasics lesson",
        description="Rerun a lesson of shared/LESSONS.md as Lightning runs; writes figures, summary.md and "
                    "summary.json under OUT/lesson_NAME/version_N.",
        epilog="The backprop lesson also takes --x X0 X1 --w1 A B C D --w2 E F --y Y to compute your own "
               "example by hand.")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"lesson names, or 'all': {', '.join(LESSONS)}")
    p.add_argument("--list", action="store_true", help="list the lessons and exit")
    p.add_argument("--out", type=Path, default=Path("lightning_logs"), help="output folder (default: lightning_logs)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    p.add_argument("--fast", action="store_true", help="a tenth of each budget, for a quick look")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="data sets folder (default: data)")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator for the runs (default: cpu)")
    return p


def lesson_main(argv: list[str] | None = None) -> int:
    """Entry point of ``dlbasics lesson``; returns the exit status."""
    args, rest = parser().parse_known_args(argv)
    if args.list:
        for lesson in LESSONS.values():
            print(f"{lesson.name:<15} {lesson.code}  {lesson.title}")
        return 0
    names = list(LESSONS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in LESSONS]
    if not names or unknown:
        what = f"unknown lesson {', '.join(map(repr, unknown))}" if unknown else "no lesson named"
        print(f"dlbasics lesson: {what}; choose from: {', '.join(LESSONS)}, all (or --list)", file=sys.stderr)
        return 2
    if rest and names != ["backprop"]:
        print(f"dlbasics lesson: unrecognised arguments: {' '.join(rest)}", file=sys.stderr)
        return 2
    hide_lightning_noise()
    # The lessons put vanishing gradients in their figures and summaries; a warning per epoch adds nothing.
    warnings.filterwarnings("ignore", category=GradientFlowWarning)
    # Dozens of short runs: keep Lightning's per-run banners (devices, tips, "fit stopped") out of the way.
    for logger_name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger_name).setLevel(logging.WARNING)
    overview = []
    for name in names:
        lesson = LESSONS[name]
        module = lesson.load()
        if rest:  # backprop with the user's own numbers: only the computation by hand
            return module.by_hand_cli(rest)
        ctx = LessonContext(name, args.out, seed=args.seed, fast=args.fast, accelerator=args.accelerator,
                            data_dir=args.data_dir)
        print(f"== {lesson.code} {lesson.title}: running ...", flush=True)
        start = time.perf_counter()
        module.run(ctx)
        seconds = time.perf_counter() - start
        ctx.write_summary(f"{lesson.code} {lesson.title}", seconds)
        print(f"   done in {seconds:.1f} s -> {ctx.dir}/summary.md", flush=True)
        overview.append((lesson, ctx, seconds))
    print_overview(overview)
    return 0


def print_overview(overview: list) -> None:
    """The closing table: each lesson's key numbers, run time and folder."""
    print("\n" + "=" * 100)
    for lesson, ctx, seconds in overview:
        print(f"{lesson.code} {lesson.title}  ({seconds:.0f} s)  figures: {ctx.dir / 'figures'}")
        for key, value in ctx.report.key.items():
            print(f"    {key:<55} {fmt(value)}")
    print("=" * 100)
