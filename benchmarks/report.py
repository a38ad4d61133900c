"""The results table (console and RESULTS.md) and the machine it was measured on."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import lightning
import torch

from benchmarks.timing import Timings
from dlbasics.cpu_features import math_flags, native_bf16

COLUMNS = ("workload", "baseline", "baseline (s)", "side", "side (s)", "ratio", "target", "met?")


@dataclass
class Row:
    """One comparison: medians of the baseline and the compared side (a dlbasics run, or bare Lightning), their
    ratio, and the target."""

    workload: str
    baseline: str
    baseline_s: float | None
    side: str
    dlbasics_s: float
    ratio: str  # e.g. "1.23 (dlbasics/raw tensors)"
    target: str
    met: str  # "yes", "no" or "—" (no target)

    def cells(self) -> list[str]:
        baseline_s = "—" if self.baseline_s is None else f"{self.baseline_s:.2f}"
        return [self.workload, self.baseline, baseline_s, self.side, f"{self.dlbasics_s:.2f}", self.ratio, self.target,
                self.met]


def table(rows: list[Row]) -> str:
    """A markdown table, padded so it also reads in a terminal."""
    cells = [list(COLUMNS), *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def timing_notes(timings: Timings) -> list[str]:
    """Every repeat's seconds and each side's final metrics, so noise and equal work can be checked."""
    notes = ["seconds per repeat: " + "; ".join(f"{side} " + ", ".join(f"{s:.2f}" for s in seconds)
                                               for side, seconds in timings.seconds.items())]
    metrics = {side: ", ".join(f"{k} {v:.4g}" for k, v in result.items() if k in ("loss", "acc"))
               for side, result in timings.results.items()}
    if any(metrics.values()):
        notes.append("last evaluation: " + "; ".join(f"{side}: {m}" for side, m in metrics.items() if m))
    # ``fit_s``: a lesson run's own clock (``RunResult.seconds``) starts after it is parsed and built.
    built = {side: timings.seconds[side][-1] - result["fit_s"] for side, result in timings.results.items()
             if "fit_s" in result}
    if built:
        notes.append("parsing the config and building model, datamodule and trainer, in the last repeat: " +
                     "; ".join(f"{side} {s:.2f} s" for side, s in built.items()))
    return notes


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: above ~0.5 at the start, something else was running."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def machine_info(start_load: str) -> dict[str, str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = math_flags()
    return {"CPU": cpu_model(), "cores": f"{os.cpu_count()} ({usable} usable by this process)",
            "instruction sets (matmul/conv)": f"{', '.join(flags) or 'none reported'}; native bf16: "
                                              f"{'yes' if native_bf16() else 'no'}; torch kernels: "
                                              f"{torch.backends.cpu.get_cpu_capability()}",
            "torch threads": str(torch.get_num_threads()), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__,
            "load average (1, 5, 15 min)": f"{start_load} at the start, {load_average()} at the end",
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}


def markdown(rows: list[Row], notes: dict[str, list[str]], command: str, quick: bool, start_load: str) -> str:
    """RESULTS.md: the machine, the command, the table, then each workload's notes."""
    caveat = " (quick smoke run: fast budgets, 1 repeat; not comparable with a full run)" if quick else ""
    machine = [f"- {key}: {value}" for key, value in machine_info(start_load).items()]
    lines = ["# dlbasics benchmarks", "", f"Command: `{command}`{caveat}", "", *machine, "",
             "Medians of interleaved repeats (baseline, dlbasics, baseline, dlbasics, ...) in one process; "
             "seconds are wall time of the whole run, model construction included; the raw and bare-Lightning "
             "sides' data is loaded before timing, while a dlbasics side's time includes parsing its config and "
             "building and loading its datamodule, as a lesson run does (MNIST's files are on disk beforehand). "
             "A ratio is the median of each round's ratio of its two back-to-back runs, not the ratio of the "
             "medians: the machine's speed drifts during a run.", "",
             table(rows), ""]
    for workload, items in notes.items():
        lines += [f"## {workload}", "", *[f"- {item}" for item in items], ""]
    return "\n".join(lines)
