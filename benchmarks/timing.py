"""Interleaved repeats: each round runs every side once, so machine noise hits all sides alike; medians compare."""

from __future__ import annotations

import gc
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# A side of a comparison: ``prepare()`` does the untimed set-up (fresh context, callbacks, datasets) and returns
# the call that is timed. The timed call returns a small dict (metrics, sample counts), never a live model.
Side = Callable[[], Callable[[], dict[str, Any]]]


@dataclass
class Timings:
    """Seconds of every repeat of every side, and each side's last returned dict."""

    seconds: dict[str, list[float]]
    results: dict[str, dict[str, Any]]

    def median(self, side: str) -> float:
        return statistics.median(self.seconds[side])

    def paired_ratio(self, numerator: str, denominator: str) -> float:
        """Median over rounds of ``numerator``'s seconds / ``denominator``'s seconds in the same round.

        The two runs of a round are back to back, so a drift of the machine's speed during the benchmark (this
        VM's varies by up to 1.5x over minutes) cancels in each ratio; a ratio of the two medians can pair a
        fast minute with a slow one.
        """
        return statistics.median(self.round_ratios(numerator, denominator))

    def round_ratios(self, numerator: str, denominator: str) -> list[float]:
        """``numerator``'s seconds / ``denominator``'s seconds in each round, in order."""
        return [a / b for a, b in zip(self.seconds[numerator], self.seconds[denominator], strict=True)]


def interleave(sides: dict[str, Side], repeats: int, label: str, seed: int = 0) -> Timings:
    """Run rounds ``side 1, side 2, ...`` ``repeats`` times; seed before each timed call; report each to stderr."""
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    results: dict[str, dict[str, Any]] = {}
    for round_ in range(1, repeats + 1):
        for name, prepare in sides.items():
            call = prepare()
            gc.collect()  # garbage of the previous run is collected here, not inside the next timed call
            torch.manual_seed(seed)
            start = time.perf_counter()
            results[name] = call()
            elapsed = time.perf_counter() - start
            seconds[name].append(elapsed)
            del call
            print(f"[{label}] {name}: {elapsed:.2f} s (repeat {round_}/{repeats})", file=sys.stderr, flush=True)
    return Timings(seconds, results)


def quiet() -> None:
    """Keep Lightning's per-run banners and warnings out of the timing output: what ``dlbasics lesson`` silences
    (``quiet_lightning``), and deprecation warnings."""
    from dlbasics.lessons.cli import quiet_lightning

    quiet_lightning()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
