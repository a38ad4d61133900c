"""``python -m benchmarks.precision_claims LESSON...``: the lessons' claims in fp32 and with every run in bf16.

Each named lesson runs twice at its default seeds, as ``dlbasics lesson`` runs it: once as published (fp32), once
with ``--trainer.precision=bf16-mixed`` appended to every run's arguments (forced bf16 autocast, emulated on a CPU
without native bf16: same numbers, slower). It prints one markdown row per claim: seeds where it holds and the
mean [95% interval] of its measure in each precision, and whether the bf16 mean lies within the fp32 interval.
This is the check behind keeping the small lessons in fp32 (``dlbasics.precision.BF16WhereNative`` is only in
``configs/mnist_cnn.yaml``); it is not a timing, so a busy machine only makes it slower.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from dlbasics.lessons import runner
from dlbasics.lessons.api import LessonClaim, run_lesson
from dlbasics.lessons.markdown import cell

BF16 = "--trainer.precision=bf16-mixed"


@contextmanager
def every_run_in_bf16() -> Iterator[None]:
    """Append ``BF16`` to the ``dlbasics fit`` arguments of every lesson run while inside."""
    plain = runner.Run.args
    runner.Run.args = lambda run, seed, fast=False: [*plain(run, seed, fast), BF16]
    try:
        yield
    finally:
        runner.Run.args = plain


def measured(claim: LessonClaim) -> str:
    return f"{claim.k} of {claim.n}, {claim.measure}"


def within(claim: LessonClaim, reference: LessonClaim) -> str:
    if reference.interval is None:
        return "—"
    low, high = reference.interval
    return "yes" if low <= claim.mean <= high else "**no**"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision_claims", description=__doc__.split("\n")[0])
    p.add_argument("lessons", nargs="+", help="lesson names (dlbasics lesson --list)")
    args = p.parse_args(argv)
    out = tempfile.mkdtemp(prefix="precision_claims_")
    print("| claim | setting | fp32: seeds, mean [95% interval] | bf16: seeds, mean [95% interval] | "
          "bf16 mean in the fp32 interval |")
    print("|---|---|---|---|---|")
    for name in args.lessons:
        fp32 = run_lesson(name, out=f"{out}/fp32").claims
        with every_run_in_bf16():
            bf16 = run_lesson(name, out=f"{out}/bf16").claims
        for ours, theirs in zip(fp32, bf16, strict=True):
            setting = "published" if ours.setting == "published settings" else "shows it"
            print(f"| {ours.code}: {cell(ours.text)} | {setting} | {measured(ours)} | {measured(theirs)} | "
                  f"{within(theirs, ours)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
