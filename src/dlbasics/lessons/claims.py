"""A lesson's claims as data: the sentence a learner reads, the number that measures it, and when it holds.

A lesson module declares ``CLAIMS``; after its runs, ``evaluate`` computes each claim's measure at every seed from
that seed's runs, and the claim holds when its condition is met in at least ``MIN_FRACTION`` of the seeds. A claim
is measured either at the catalogue's published settings or at a variant that "shows it"; the setting says which,
and what changed. A claim at the published settings may not hold: the lesson then says so, with the number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlbasics.lessons.stats import INTERVAL, Estimate, estimate

PUBLISHED = "published settings"
MIN_FRACTION = 0.8  # 4 of 5 seeds


@dataclass(frozen=True)
class Claim:
    """One claim of a lesson.

    Args:
        code: the exercise it belongs to (``L2.c``); two claims may share it (published and "shows it").
        text: the sentence a learner reads.
        measure: the number, from one seed's results: ``{run name: RunResult}``.
        runs: the names of the runs ``measure`` reads; a seed lacking one of them is not counted.
        above: the claim holds at a seed when the measure is above this.
        below: ... and/or below this.
        setting: ``PUBLISHED``, or what the "shows it" variant changed and why.
    """

    code: str
    text: str
    measure: Callable[[Mapping[str, Any]], float]
    runs: tuple[str, ...]
    above: float | None = None
    below: float | None = None
    setting: str = PUBLISHED

    def __post_init__(self) -> None:
        if self.above is None and self.below is None:
            raise ValueError(f"claim {self.code} {self.text!r} needs a condition: above=, below= or both")

    @property
    def shows_it(self) -> bool:
        """Measured at a variant chosen to show the phenomenon (it must hold there)."""
        return self.setting != PUBLISHED

    @property
    def condition(self) -> str:
        parts = [f"> {self.above:g}" if self.above is not None else "", f"< {self.below:g}"
                 if self.below is not None else ""]
        return "measure " + " and ".join(p for p in parts if p)

    def holds_at(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return (self.above is None or value > self.above) and (self.below is None or value < self.below)


@dataclass(frozen=True)
class ClaimResult:
    """A claim measured at every seed: in how many it holds, and the measure's mean and interval."""

    claim: Claim
    seeds: tuple[int, ...]
    estimate: Estimate

    @property
    def k(self) -> int:
        return sum(self.claim.holds_at(v) for v in self.estimate.values)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def holds(self) -> bool:
        return self.n > 0 and self.k >= math.ceil(MIN_FRACTION * self.n - 1e-9)

    def verdict(self) -> str:
        return "holds" if self.holds else "does not hold"

    def as_dict(self) -> dict[str, Any]:
        claim = self.claim
        return {"code": claim.code, "text": claim.text, "setting": claim.setting, "shows_it": claim.shows_it,
                "condition": claim.condition, "k": self.k, "n": self.n, "holds": self.holds,
                "seeds": list(self.seeds), **self.estimate.as_dict(),
                "interval": INTERVAL if self.n > 1 else "none (one seed)"}

    def line(self) -> str:
        """``L2.c holds in 5 of 5 seeds: measure 0.012 [0.010, 0.014] (< 0.1): <text>``."""
        return (f"{self.claim.code} {self.verdict()} in {self.k} of {self.n} seeds: {self.estimate} "
                f"({self.claim.condition}) - {self.claim.text}")


def evaluate(claims: Sequence[Claim], by_seed: Mapping[int, Mapping[str, Any]]) -> list[ClaimResult]:
    """Each claim measured at every seed whose results hold all the runs it reads.

    Raises:
        ValueError: if no seed has all the runs a claim reads (a claim names a run the lesson does not make).
    """
    results = []
    for claim in claims:
        seeds = tuple(s for s, runs in by_seed.items() if all(name in runs for name in claim.runs))
        if not seeds:
            raise ValueError(f"claim {claim.code} {claim.text!r} reads runs {list(claim.runs)}, but no seed ran "
                             "all of them")
        values = [float(claim.measure(by_seed[s])) for s in seeds]
        results.append(ClaimResult(claim, seeds, estimate(values)))
    return results
