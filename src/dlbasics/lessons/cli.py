"""``dlbasics lesson``: rerun the lessons of the catalogue (docs/lessons.md) as Lightning runs.

Imports no Lightning until a lesson runs, so ``--list`` answers at once. A lesson module may declare arguments of
its own: ``add_arguments(group)`` adds them, and ``handle_arguments(args, parser)`` may answer them instead of
running the lesson (an exit status), or return None to run it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from dlbasics.lessons import LESSONS, Lesson


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dlbasics lesson",
        description="Rerun lessons of the catalogue (docs/lessons.md) as Lightning runs; writes figures, "
                    "summary.md and summary.json under OUT/lesson_NAME/version_N, and TensorBoard logs.")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"lesson names, or 'all': {', '.join(LESSONS)}")
    p.add_argument("--list", action="store_true", help="list the lessons and exit")
    p.add_argument("--print-configs", action="store_true",
                   help="print each run's `dlbasics fit` command and full config, and exit (nothing runs)")
    p.add_argument("--out", type=Path, default=Path("lightning_logs"), help="output folder (default: lightning_logs)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="first seed: the runs use seeds SEED, SEED+1, ... (default: 0)")
    p.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                   help="seeds per run; each claim reports in how many of them it holds and its 95%% interval "
                        "(default: 5, and 1 for the MNIST runs)")
    p.add_argument("--fast", action="store_true", help="a tenth of each budget, for a quick look")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="data sets folder (default: data)")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator for the runs (default: cpu)")
    return p


def positive_int(text: str, minimum: int = 1) -> int:
    """``--seeds`` value: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
    return value


def non_negative_int(text: str) -> int:
    """``--seed`` value: an integer of at least 0 (a seed Lightning accepts)."""
    return positive_int(text, minimum=0)


def lesson_main(argv: list[str] | None = None) -> int:
    """Entry point of ``dlbasics lesson``; returns the exit status (2 for bad arguments, as argparse exits)."""
    try:
        return parse_and_run(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:  # argparse exits on --help and on errors; hand back the status instead
        return exit_.code if isinstance(exit_.code, int) else 2


def parse_and_run(argv: list[str]) -> int:
    p = parser()
    known, _ = p.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    if known.list:
        for lesson in LESSONS.values():
            print(f"{lesson.name:<15} {lesson.code}  {lesson.title}")
        return 0
    help_wanted = "-h" in argv or "--help" in argv
    names = list(LESSONS) if known.names == ["all"] or help_wanted else known.names
    unknown = [n for n in names if n not in LESSONS]
    if not names or unknown:
        what = f"unknown lesson {', '.join(map(repr, unknown))}" if unknown else "no lesson named"
        print(f"dlbasics lesson: {what}; choose from: {', '.join(LESSONS)}, all (or --list)", file=sys.stderr)
        return 2
    modules = {name: LESSONS[name].load() for name in names}
    for name, module in modules.items():  # each lesson's own arguments, in a group of its own
        if hasattr(module, "add_arguments"):
            module.add_arguments(p.add_argument_group(f"{name} lesson ({LESSONS[name].code})"))
    args = p.parse_args(argv)  # exits 2 on an argument no named lesson declares, 0 after --help
    for module in modules.values():
        handle = getattr(module, "handle_arguments", None)
        status = handle(args, p) if handle is not None else None
        if status is not None:
            return status
    if args.print_configs:
        return print_configs([LESSONS[n] for n in names], modules, args.seed)
    return run_lessons([LESSONS[n] for n in names], args)


def quiet_lightning() -> None:
    """Dozens of short runs: keep Lightning's per-run banners and the per-epoch warnings out of the way."""
    from dlbasics.callbacks import GradientFlowWarning
    from dlbasics.lightning_cli import hide_lightning_noise

    hide_lightning_noise()
    # The lessons put vanishing gradients in their figures and summaries; a warning per epoch adds nothing.
    warnings.filterwarnings("ignore", category=GradientFlowWarning)
    for logger_name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger_name).setLevel(logging.WARNING)


def print_configs(lessons: list[Lesson], modules: dict, seed: int) -> int:
    """Each run's command line and full config, through the parser ``dlbasics fit`` uses."""
    from dlbasics.lessons.api import lessons_quieted
    from dlbasics.lessons.runner import run_config

    with lessons_quieted():
        for lesson in lessons:
            for run in modules[lesson.name].RUNS:
                print(f"# {lesson.code} {lesson.name} / {run.name}\n# {run.command(seed)}")
                print(run_config(run, seed))
    return 0


def run_lessons(lessons: list[Lesson], args: argparse.Namespace) -> int:
    """Run the lessons through the Python API (one definition of a lesson run), then print the closing table and
    where the report page is."""
    from dlbasics.lessons.api import run_lessons as run

    results = run([lesson.name for lesson in lessons], seeds=args.seeds, fast=args.fast, out=args.out,
                  seed=args.seed, accelerator=args.accelerator, data_dir=args.data_dir)
    print_overview(results)
    print(f"Report page of every lesson in {args.out}: {results[-1].page.resolve()}")
    return 0


def print_overview(results: list) -> None:
    """The closing table: each lesson's claims (holds or not, in k of N seeds, mean and interval), run time, folder."""
    from dlbasics.lessons.claims import MIN_FRACTION
    from dlbasics.lessons.stats import INTERVAL

    print("\n" + "=" * 100)
    print(f"Claims: holds = its condition is met in at least {MIN_FRACTION:.0%} of the seeds (4 of 5); "
          f"measure = mean [{INTERVAL}]")
    for result in results:
        print(f"{result.code} {result.title}  ({result.seconds:.0f} s, {result.seeds_text})  "
              f"{result.folder / 'summary.md'}")
        for claim in result.claims:
            where = "shows it" if claim.shows_it else "published"
            print(f"    {claim.code:<5} {where:<9} {claim.verdict:<13} {claim.k}/{claim.n}  "
                  f"{claim.measure:<32} {claim.condition:<18} {claim.text}")
    print("=" * 100)
