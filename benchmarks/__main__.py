"""``python -m benchmarks``: time each workload as raw PyTorch loops and as its dlbasics lesson run, interleaved."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path


from benchmarks.lesson_runs import ROOT, Settings
from benchmarks.report import Row, load_average, markdown, timing_notes
from benchmarks.timing import interleave, quiet
from benchmarks.workloads import WORKLOADS

DEFAULT_OUT = ROOT / "benchmarks" / "RESULTS.md"
# What follows this line in the results file is written by hand or by other scripts (benchmarks/fast_logging.py,
# numbers quoted from the code); a new run replaces everything above it and keeps the rest.
KEPT = "<!-- Kept when `python -m benchmarks` rewrites this file: -->"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="Time each lesson workload as raw PyTorch "
                                "loops and as its dlbasics run, interleaved; see benchmarks/README.md.")
    p.add_argument("--repeats", type=int, default=5,
                   help="interleaved repeats per workload; the MNIST ones take at most 3 (default: 5)")
    p.add_argument("--only", nargs="+", choices=list(WORKLOADS), metavar="NAME",
                   help=f"run only these workloads: {', '.join(WORKLOADS)} (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the lessons' fast budgets on both sides, 1 repeat; writes no file unless --out")
    p.add_argument("--out", type=Path, default=None, help=f"markdown results file (default: {DEFAULT_OUT})")
    return p


def run_workloads(names: list[str], repeats: int, settings: Settings) -> tuple[list[Row], dict[str, list[str]]]:
    """Time each named workload; the table rows and, per workload, its notes."""
    rows: list[Row] = []
    notes: dict[str, list[str]] = {}
    # Untimed: the first Lightning run of a process pays one-off imports and set-up.
    interleave(WORKLOADS["dropnet"].sides(settings), 1, "warm-up")
    for name in names:
        workload = WORKLOADS[name]
        n = 1 if settings.quick else min(repeats, workload.max_repeats or repeats)
        timings = interleave(workload.sides(settings), n, name)
        title = f"{workload.title} (median of {n})"
        workload_rows = [comparison.row(title, timings) for comparison in workload.comparisons]
        rows += workload_rows
        extra = workload.extra(timings) if workload.extra else []
        missed = any(row.met == "no" for row in workload_rows) or any(": not met)" in note for note in extra)
        gap = [f"gap (target not met): {text}" for text in workload.gap] if missed else []
        rounds = [note for comparison in workload.comparisons if (note := comparison.round_note(timings))]
        notes[title] = [*workload.notes, *timing_notes(timings), *rounds, *extra, *gap]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats} must be at least 1")
    quiet()
    start_load = load_average()
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 1.0:
        print(f"warning: load average {start_load} before starting: another process is using the CPU, and with "
              "several torch threads small ops stall when a core is taken; these timings will be distorted",
              file=sys.stderr)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    tmp = Path(tempfile.mkdtemp(prefix="dlbasics-bench-"))
    try:
        rows, notes = run_workloads(list(dict.fromkeys(args.only or WORKLOADS)), args.repeats,
                                    Settings(quick=args.quick, out=tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.quick:  # fast budgets: a met target says nothing yet
        for row in rows:
            row.met = f"{row.met} (quick)" if row.met in ("yes", "no") else row.met
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    text = markdown(rows, notes, command, args.quick, start_load)
    print(text)
    if out is not None:
        kept = out.read_text().partition(KEPT)[2] if out.exists() else ""
        out.write_text(f"{text}\n{KEPT}{kept}" if kept else text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
