"""Lesson claims as data: measured at every seed, holding in k of N, with the mean's 95% Student-t interval."""

import math

import numpy as np
import pytest
from scipy import stats

from dlbasics.lessons import LESSONS
from dlbasics.lessons.claims import PUBLISHED, Claim, evaluate
from dlbasics.lessons.stats import estimate, mean_band


class Fake:
    """A stand-in for a RunResult: the one number a fabricated claim reads."""

    def __init__(self, value: float) -> None:
        self.value = value


def ratio_claim(**condition) -> Claim:
    return Claim("Lx", "a is below a tenth of b", lambda r: r["a"].value / r["b"].value, runs=("a", "b"), **condition)


def by_seed(pairs):
    return {seed: {"a": Fake(a), "b": Fake(b)} for seed, (a, b) in enumerate(pairs)}


def test_a_claim_holds_in_k_of_n_seeds_with_the_means_t_interval():
    values = [0.01, 0.02, 0.03, 0.04, 0.5]  # the last seed contradicts the claim
    (result,) = evaluate([ratio_claim(below=0.1)], by_seed([(v, 1.0) for v in values]))
    assert (result.k, result.n, result.holds) == (4, 5, True)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert result.estimate.mean == pytest.approx(np.mean(values))
    assert (result.estimate.low, result.estimate.high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert result.as_dict()["k"] == 4 and "Student-t" in result.as_dict()["interval"]


def test_a_claim_comes_out_false_on_results_that_contradict_it():
    (result,) = evaluate([ratio_claim(below=0.1)], by_seed([(0.5, 1.0), (0.05, 1.0), (0.7, 1.0), (2.0, 1.0),
                                                             (0.01, 1.0)]))
    assert (result.k, result.holds, result.verdict()) == (2, False, "does not hold")
    (three_of_five,) = evaluate([ratio_claim(below=0.1)], by_seed([(0.01, 1)] * 3 + [(1, 1)] * 2))
    assert three_of_five.k == 3 and not three_of_five.holds  # 4 of 5 are needed


def test_both_bounds_and_nan_count_as_not_holding():
    claim = ratio_claim(above=0.2, below=0.4)
    assert [claim.holds_at(v) for v in (0.3, 0.2, 0.4, 0.1, float("nan"))] == [True, False, False, False, False]
    assert claim.condition == "measure > 0.2 and < 0.4"


def test_a_claim_without_a_condition_is_refused():
    with pytest.raises(ValueError, match="needs a condition"):
        Claim("Lx", "no condition", lambda r: 0.0, runs=())


def test_seeds_lacking_a_run_are_not_counted_and_a_claim_on_runs_never_made_is_an_error():
    results = by_seed([(0.01, 1.0)] * 3)
    del results[2]["b"]
    (result,) = evaluate([ratio_claim(below=0.1)], results)
    assert result.seeds == (0, 1) and result.n == 2
    with pytest.raises(ValueError, match=r"reads runs \['a', 'c'\]"):
        evaluate([Claim("Lx", "t", lambda r: 0.0, runs=("a", "c"), below=1.0)], results)


def test_one_seed_has_no_interval():
    one = estimate([0.3])
    assert (one.mean, one.low, one.high, str(one)) == (0.3, None, None, "0.3")
    with pytest.raises(ValueError, match="at least one value"):
        estimate([])


def test_an_infinite_measure_gets_the_range_of_the_values_as_its_interval():
    # e.g. L9.a's edge gap when no grid rate diverged: no t-interval exists, and NaN would hide the values
    some = estimate([0.2, math.inf, 0.4])
    assert (some.mean, some.low, some.high) == (math.inf, 0.2, math.inf)
    both = estimate([math.inf, math.inf])
    assert (both.mean, both.low, both.high, str(both)) == (math.inf, math.inf, math.inf, "inf [inf, inf]")


def test_the_band_of_curves_of_unequal_length_uses_the_seeds_present():
    curves = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, np.nan]])
    low, high = mean_band(curves)
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 3.0], ddof=1) / math.sqrt(2)
    assert low[0] == pytest.approx(2.0 - half) and high[0] == pytest.approx(2.0 + half)
    assert low[2] == high[2] == 3.0  # one seed there: no width


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_claim_reads_runs_its_lesson_makes(name):
    module = LESSONS[name].load()
    made = {run.name for run in module.RUNS}
    claims = getattr(module, "CLAIMS", ())
    assert claims, f"lesson {name} declares no claims"
    for claim in claims:
        assert set(claim.runs) <= made, (claim.code, claim.runs)
        assert claim.setting == PUBLISHED or len(claim.setting) > 20  # a shows-it variant says what changed
