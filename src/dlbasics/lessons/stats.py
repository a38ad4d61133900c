"""Across-seed statistics of the lessons: the mean of a measure and its 95% interval."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
INTERVAL = "95% Student-t interval of the mean over seeds"


@dataclass(frozen=True)
class Estimate:
    """A measure over seeds: its mean and the 95% Student-t interval of that mean (None with one seed)."""

    values: tuple[float, ...]
    mean: float
    low: float | None
    high: float | None

    def __str__(self) -> str:
        if self.low is None:
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"

    def as_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "values": list(self.values)}


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and ``mean +- t(0.975, n-1) * s / sqrt(n)`` of per-seed values; no interval for a single seed.

    A seed whose measure is infinite (a run that never reached what the measure reads) makes the mean infinite and
    the t-interval undefined; the interval is then the range of the values, which still contains the mean.

    Raises:
        ValueError: if ``values`` is empty.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("an estimate needs at least one value")
    low, high = mean_band(data[:, None])
    mean = float(data.mean())
    if data.size == 1:
        return Estimate((float(data[0]),), mean, None, None)
    if np.isinf(data).any():
        return Estimate(tuple(map(float, data)), mean, float(data.min()), float(data.max()))
    return Estimate(tuple(map(float, data)), mean, float(low[0]), float(high[0]))


def mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``curves`` (seeds, epochs): the low and high ends of the 95% t-interval of the mean.

    With one seed the band is the curve itself. NaN (a seed whose curve is shorter) is left out of its column.
    """
    curves = np.asarray(curves, dtype=np.float64)
    n = np.sum(~np.isnan(curves), axis=0)
    mean = np.nanmean(curves, axis=0)
    if curves.shape[0] < 2:
        return mean, mean
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with one seed: no spread, no band
        sem = np.nanstd(curves, axis=0, ddof=1) / np.sqrt(n)
        half = np.where(n > 1, stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1)) * sem, 0.0)
    return mean - half, mean + half
