"""L9's own logic: the grid's best rate, a diverged run's loss, the suggestion's distance, the guard's stop."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from dlbasics.callbacks import NonFiniteGuard
from dlbasics.lessons import learning_rate as L9
from dlbasics.lessons.runner import RunResult
from dlbasics.lr_find import RangeTestResult


def result(train: list[float], val: list[float] | None = None, callbacks: tuple = ()) -> RunResult:
    curves = {"train/loss": train, "val/loss": val if val is not None else train}
    return RunResult("r", curves, {}, None, None, list(callbacks), Path("."), 0.0)


def test_a_run_with_a_nan_anywhere_in_its_training_loss_ends_at_inf():
    assert L9.final_loss(result([0.5, 0.2])) == 0.2
    assert L9.final_loss(result([0.5, 0.3], [0.4, 0.1]), "val/loss") == 0.1
    assert L9.final_loss(result([0.5, math.nan, 0.1])) == math.inf
    assert L9.final_loss(result([0.5, math.inf]), "val/loss") == math.inf


def test_the_grid_best_is_the_lowest_finite_loss_and_diverged_rates_never_win():
    assert L9.grid_best({0.01: 0.3, 0.1: 0.05, 1.0: math.inf}) == 0.1
    assert L9.grid_best({0.001: 0.2, 0.01: 0.2}) == 0.001  # a tie: the first, the smaller rate
    with pytest.raises(ValueError, match=r"every learning rate of the grid \[0.1, 1.0\] diverged"):
        L9.grid_best({0.1: math.inf, 1.0: math.inf})


def seed_results(best: float, suggestion: float | None) -> dict:
    """One seed's grid where ``best`` ends lowest and the rates from 0.32 on diverge."""
    out = {run.name: result([1.0, 0.5 if lr != best else 0.1] if lr < 0.3 else [1.0, math.nan])
           for lr, run in L9.GRID.items()}
    return {**out, L9.NAME: SimpleNamespace(suggestion=suggestion)}


def test_the_suggestion_gap_is_the_decades_between_it_and_the_best_rate():
    assert L9.best_lr(seed_results(0.1, 0.01)) == 0.1
    assert L9.suggestion_gap(seed_results(0.1, 0.01)) == pytest.approx(1.0)
    assert L9.suggestion_gap(seed_results(0.01, 0.02)) == pytest.approx(math.log10(2))
    assert L9.CLAIMS[0].holds_at(L9.suggestion_gap(seed_results(0.1, 0.04)))  # 2.5x: within 3
    assert not L9.CLAIMS[0].holds_at(L9.suggestion_gap(seed_results(0.1, 0.03)))  # 3.3x: not
    assert L9.suggestion_gap(seed_results(0.1, None)) == math.inf  # no suggestion: never within


def edge_results(stopped_at: float | None, num_training: int = 100, diverging_from: float = 0.3) -> dict:
    """One seed's grid whose rates from ``diverging_from`` on diverge, and a 3-step range test: stopped at
    ``stopped_at`` before its ``num_training`` steps, or (None) ending at 10."""
    out = {run.name: result([1.0, 0.5] if lr < diverging_from else [1.0, math.nan]) for lr, run in L9.GRID.items()}
    lrs = [1e-4, 1e-3, 10.0 if stopped_at is None else stopped_at]  # 3 steps of num_training
    test = RangeTestResult(lrs=lrs, losses=[1.0, 0.5, 9.0], suggestion=1e-3, lightning_suggestion=1e-3,
                           optimizer="SGD", settings={"num_training": num_training, "early_stop_threshold": 4.0})
    return {**out, L9.NAME: test}


def test_the_edge_gap_is_the_decades_between_where_the_range_test_stopped_and_the_first_diverging_rate():
    (edge,) = [c for c in L9.CLAIMS if c.measure is L9.edge_gap]
    assert edge.shows_it
    assert L9.smallest_diverging(edge_results(0.5)) == 0.32
    assert L9.edge_gap(edge_results(0.64)) == pytest.approx(math.log10(2))
    assert edge.holds_at(L9.edge_gap(edge_results(0.9)))  # 2.8x: within 3
    assert not edge.holds_at(L9.edge_gap(edge_results(1.0)))  # 3.1x: not
    assert not edge.holds_at(L9.edge_gap(edge_results(0.1)))  # 3.2x below it: not either
    assert L9.edge_gap(edge_results(None, num_training=3)) == math.inf  # ran every step: it never stopped
    assert L9.edge_gap(edge_results(0.5, diverging_from=math.inf)) == math.inf  # no grid rate diverged


def test_a_range_test_that_ran_every_step_has_no_divergence_rate():
    settings = {"num_training": 3, "early_stop_threshold": 4.0}
    ran = RangeTestResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 0.4], None, None, "SGD", settings)
    stopped = RangeTestResult([1e-3, 1e-2], [1.0, 5.0], None, None, "SGD", settings)
    assert (ran.divergence_lr, stopped.divergence_lr) == (None, 1e-2)


def test_the_guard_stopped_a_run_only_when_its_history_has_a_stop():
    guard = NonFiniteGuard(raise_error=False)
    run = result([1.0, 1e30], callbacks=(guard,))
    assert not L9.guard_stopped(run)
    guard.history.append({"step": 11, "epoch": 11, "batch": 0, "what": "loss", "action": "stop"})
    assert L9.guard_stopped(run)
    skipping = NonFiniteGuard(action="skip")
    skipping.history.append({"step": 3, "action": "skip"})
    assert not L9.guard_stopped(result([1.0], callbacks=(skipping,)))


def test_the_schedule_gain_is_the_better_of_cosine_and_one_cycle_over_constant():
    vals = {"constant": 0.04, "step decay (x0.3 every 33 epochs)": 0.001, "cosine": 0.05, "one-cycle": 0.02}
    results = {L9.SCHEDULED[name].name: result([1.0, 0.1], [1.0, v]) for name, v in vals.items()}
    assert L9.schedule_gain(results) == pytest.approx(0.5)  # step decay is not one of the two


def test_the_too_large_run_keeps_only_a_guard_that_warns_and_the_grid_none():
    cli_args = L9.TOO_LARGE_RUN.overrides
    assert any('"raise_error": false' in a and "NonFiniteGuard" in a for a in cli_args)
    assert all("--trainer.callbacks=[]" in run.overrides for run in L9.GRID.values())
    assert len(L9.LRS) >= 7 and L9.LRS[-1] == L9.TOO_LARGE and L9.TOO_SMALL == L9.LRS[0]
