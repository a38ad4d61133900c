"""L9 The learning rate: Lightning's range test on L5's TinyNet (L9.a), training at too small, the suggested and
too large a rate with ``NonFiniteGuard`` stopping the diverging one (L9.b), and schedules at one budget (L9.c).

The task: the sine TinyNet of ``configs/sine_tinynet.yaml`` (1 -> 64 -> 64 -> 1 tanh, 30 noisy points, full batch,
SGD) for 100 epochs. The range test is ``dlbasics lr-find``'s (``dlbasics.lr_find.find_learning_rate``) on each
seed's model and data, its weights restored before the seed's own runs. With full batch an epoch is one step, so a
scheduler stepped per epoch (the system's ``lr_scheduler``) is stepped per optimizer step, as OneCycleLR expects.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import LearningRateMonitor
from matplotlib.figure import Figure

from dlbasics.callbacks import NonFiniteGuard
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure, sweep_plot
from dlbasics.lessons.runner import Run, RunResult, build_run, run_seeds, stack
from dlbasics.lr_find import (
    RangeTest,
    RangeTestResult,
    find_learning_rate,
    plot_range_test,
)

CONFIG = "sine_tinynet.yaml"
EPOCHS = 100
BASE = ("--model.optimizer=torch.optim.SGD", f"--trainer.max_epochs={EPOCHS}")
QUIET = ("--trainer.callbacks=[]",)  # no guard: a diverging grid run goes on as NaN (the ensemble's seeds stay apart)
# The too-large run keeps the guard, warning instead of raising NonFiniteError at the end of the fit
GUARD = '{"class_path": "dlbasics.callbacks.NonFiniteGuard", "init_args": {"raise_error": false}}'
GUARDED = (f"--trainer.callbacks=[{GUARD}]",)
LRS = tuple(float(f"{lr:.2g}") for lr in np.logspace(-3, 0, 7))  # 0.001 ... 1 in half decades
TOO_SMALL, TOO_LARGE, CONSTANT = LRS[0], LRS[-1], 0.1  # 0.1: the grid's best rate at every seed (summary table)
RANGE_TEST = RangeTest(min_lr=1e-4, max_lr=10.0)  # lr-find's 100 steps and early stop, over 5 decades
FACTOR = 3.0  # "within a factor of 3"


def lr_run(name: str, lr: float, *extra: str) -> Run:
    return Run(name, CONFIG, (*BASE, f"--model.optimizer.lr={lr:g}", *extra))


GRID = {lr: lr_run(f"grid_lr{lr:g}", lr, *QUIET) for lr in LRS}
RANGE = Run("range_test", CONFIG, (*BASE, *QUIET))
TOO_LARGE_RUN = lr_run("too_large", TOO_LARGE, *GUARDED)
SCHEDULES = {
    "constant": (),
    "step decay (x0.3 every 33 epochs)": ("--model.lr_scheduler=torch.optim.lr_scheduler.StepLR",
                                          f"--model.lr_scheduler.step_size={EPOCHS // 3}",
                                          "--model.lr_scheduler.gamma=0.3"),
    "cosine": ("--model.lr_scheduler=torch.optim.lr_scheduler.CosineAnnealingLR",
               f"--model.lr_scheduler.T_max={EPOCHS}"),
    "one-cycle": ("--model.lr_scheduler=torch.optim.lr_scheduler.OneCycleLR", f"--model.lr_scheduler.max_lr={CONSTANT:g}",
                  f"--model.lr_scheduler.total_steps={EPOCHS}"),
}
SCHEDULED = {name: lr_run(f"schedule_{name.split()[0]}", CONSTANT, *QUIET, *extra) for name, extra in SCHEDULES.items()}
RUNS = (RANGE, *GRID.values(), TOO_LARGE_RUN, *SCHEDULED.values())
NAME = "range_test"  # each seed's RangeTestResult in ctx.by_seed
SUGGESTED = "suggested"  # each seed's run at its own suggestion (not in RUNS: its rate differs by seed)

__all__ = ["CLAIMS", "RUNS", "run"]


def final_loss(result: RunResult, metric: str = "train/loss") -> float:
    """The metric's last epoch; inf for a run that diverged (a NaN or inf anywhere in its training loss)."""
    return math.inf if result.diverged else result.curves[metric][-1]


def grid_best(losses: Mapping[float, float]) -> float:
    """The learning rate with the lowest final loss (``{lr: loss}``; inf for a diverged run).

    Raises:
        ValueError: if every rate diverged: then no rate of the grid is best.
    """
    finite = {lr: loss for lr, loss in losses.items() if math.isfinite(loss)}
    if not finite:
        raise ValueError(f"every learning rate of the grid {sorted(losses)} diverged: there is no best one")
    return min(finite, key=finite.get)


def best_lr(results: Mapping[str, Any], metric: str = "train/loss") -> float:
    return grid_best({lr: final_loss(results[run.name], metric) for lr, run in GRID.items()})


def suggestion_gap(results: Mapping[str, Any]) -> float:
    """The claim measure: |log10(suggestion / best grid rate)|; log10(3) = 0.48 is "within a factor of 3"."""
    suggestion = results[NAME].suggestion
    return math.inf if suggestion is None else abs(math.log10(suggestion / best_lr(results)))


def smallest_diverging(results: Mapping[str, Any]) -> float:
    """The smallest grid rate whose run diverged; inf when none did."""
    return min((lr for lr, run in GRID.items() if results[run.name].diverged), default=math.inf)


def edge_gap(results: Mapping[str, Any]) -> float:
    """The "shows it" measure: |log10(rate where the range test stopped / smallest diverging grid rate)|; inf when
    the test ran every step or no grid rate diverged."""
    edge, diverging = results[NAME].divergence_lr, smallest_diverging(results)
    return math.inf if edge is None or not math.isfinite(diverging) else abs(math.log10(edge / diverging))


def guard_stopped(result: RunResult) -> bool:
    """Whether the run's NonFiniteGuard stopped it (at a NaN/inf loss or gradient)."""
    return any(event["action"] == "stop" for event in result.callback(NonFiniteGuard).history)


def suggested_over_small(results: Mapping[str, Any]) -> float:
    return final_loss(results[SUGGESTED]) / final_loss(results[GRID[TOO_SMALL].name])


def schedule_gain(results: Mapping[str, Any]) -> float:
    """The lower final validation loss of cosine and one-cycle over constant's (below 1: a schedule wins)."""
    constant = final_loss(results[SCHEDULED["constant"].name], "val/loss")
    return min(final_loss(results[SCHEDULED[n].name], "val/loss") for n in ("cosine", "one-cycle")) / constant


GRID_NAMES = tuple(run.name for run in GRID.values())
CLAIMS = (
    Claim("L9.a", f"the range test's suggestion is within a factor of {FACTOR:g} of the best rate of the 7-value "
          f"grid 0.001..1 (best: lowest final training loss after {EPOCHS} epochs) (measure: |log10(suggestion / "
          "best)|)", suggestion_gap, runs=(NAME, *GRID_NAMES), below=math.log10(FACTOR)),
    Claim("L9.a", f"the range test finds the edge of divergence: the rate where it stopped (its smoothed loss above "
          f"{RANGE_TEST.early_stop_threshold:g} times its best) is within a factor of {FACTOR:g} of the smallest grid "
          f"rate whose {EPOCHS}-epoch run diverges (measure: |log10(stopping rate / that rate)|)", edge_gap,
          runs=(NAME, *GRID_NAMES), below=math.log10(FACTOR),
          setting="the same range tests and grid, read at the other end of the sweep: the suggestion (the steepest "
                  "fall of the loss during the 100-step sweep) sits 6-16x below the rate that trains best in 100 "
                  "epochs, which is the largest that does not diverge; where the test stops marks that edge"),
    Claim("L9.a", f"training at the suggestion is stable and ends lower than at the too-small rate {TOO_SMALL:g} "
          "(measure: its final training loss over the too-small run's)", suggested_over_small,
          runs=(NAME, GRID[TOO_SMALL].name), below=1.0),  # the suggested run: at each seed of the range test
    Claim("L9.b", f"at the largest rate, {TOO_LARGE:g}, training diverges and NonFiniteGuard stops it (measure: 1 if "
          "the guard stopped the run)", lambda r: float(guard_stopped(r[TOO_LARGE_RUN.name])),
          runs=(TOO_LARGE_RUN.name,), above=0.5),
    Claim("L9.c", f"cosine or one-cycle ends with a lower validation loss than a constant rate {CONSTANT:g} at the "
          f"same {EPOCHS} epochs (measure: the lower of their final validation losses over constant's)",
          schedule_gain, runs=tuple(r.name for r in SCHEDULED.values()), below=1.0),
)


def run(ctx: LessonContext) -> None:
    grid = {lr: ctx.run(run) for lr, run in GRID.items()}
    seeds = ctx.seeds_for(RANGE)
    tests = [range_test(ctx, seed) for seed in seeds]
    range_part(ctx, grid, seeds, tests)
    three_rates(ctx, grid, seeds, tests)
    schedules(ctx)


def range_test(ctx: LessonContext, seed: int) -> RangeTestResult:
    cli = build_run(RANGE, ctx.dir, seed, version=f"{RANGE.name}/seed_{seed}")
    test = RANGE_TEST if not ctx.fast else RangeTest(min_lr=RANGE_TEST.min_lr, max_lr=RANGE_TEST.max_lr,
                                                     num_training=30)
    result = find_learning_rate(cli.trainer, cli.model, cli.datamodule, test)
    ctx.by_seed.setdefault(seed, {})[NAME] = result
    return result


def range_part(ctx: LessonContext, grid: Mapping[float, Any], seeds: Sequence[int],
               tests: Sequence[RangeTestResult]) -> None:
    """L9.a: the suggestion per seed against the grid's best rate, and the range test's curve."""
    per_seed = [ctx.by_seed[seed] for seed in seeds]
    for lr, runs in grid.items():
        ctx.report.add("L9.a grid of learning rates (SGD, 100 epochs)", f"lr {lr:g}",
                       final_train_loss=runs.each(final_loss), final_val_loss=runs.each(lambda r: final_loss(r, "val/loss")),
                       diverged=f"{sum(not math.isfinite(final_loss(r)) for r in runs.results)} of {len(runs.results)} seeds")
    suggestions = [t.suggestion if t.suggestion is not None else math.nan for t in tests]
    ctx.report.add("L9.a range test", "per seed", suggestion=", ".join(f"{s:.3g}" for s in suggestions),
                   best_by_train_loss=", ".join(f"{best_lr(r):g}" for r in per_seed),
                   best_by_val_loss=", ".join(f"{best_lr(r, 'val/loss'):g}" for r in per_seed),
                   stopped_at=", ".join(f"{t.divergence_lr:.3g}" if t.divergence_lr else "never" for t in tests),
                   smallest_diverging_grid_rate=", ".join(f"{smallest_diverging(r):g}" for r in per_seed),
                   steps=", ".join(str(len(t.lrs)) for t in tests))
    ctx.report.add_key(**{"L9.a suggestion (range test)": suggestions,
                          "L9.a best grid rate / suggestion": [best_lr(r) / s for r, s in zip(per_seed, suggestions)]})
    ctx.figure(plot_range_test(tests[0], "training loss: MSE (target units²), smoothed"), "l9a_range_test")
    stable = [lr for lr in LRS if all(math.isfinite(final_loss(r)) for r in grid[lr].results)]
    ctx.figure(sweep_plot(stable, {"final training loss": [grid[lr].each(final_loss) for lr in stable],
                                   "final validation loss": [grid[lr].each(lambda r: final_loss(r, "val/loss"))
                                                             for lr in stable]},
                          f"L9.a SGD after {EPOCHS} epochs; diverged rates not drawn",
                          "learning rate (log scale)", "MSE (target units²)", log_x=True), "l9a_grid")


def three_rates(ctx: LessonContext, grid: Mapping[float, Any], seeds: Sequence[int],
                tests: Sequence[RangeTestResult]) -> None:
    """L9.b: each seed at its own suggestion, beside the grid's too-small rate and the guarded too-large one."""
    suggested = []
    for seed, test in zip(seeds, tests):
        lr = test.suggestion if test.suggestion is not None else TOO_SMALL
        run = suggested_run(lr)
        (result,) = run_seeds(run, ctx.dir, [seed], fast=ctx.fast, accelerator=ctx.accelerator,
                              data_dir=ctx.data_dir).results
        ctx.by_seed[seed][SUGGESTED] = result
        suggested.append(result)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        too_large = ctx.run(TOO_LARGE_RUN, [LearningRateMonitor()])  # a callback the ensemble refuses: solo
    messages = [str(w.message) for w in caught if str(w.message).startswith("NonFiniteGuard:")]
    small = grid[TOO_SMALL]
    rows = {f"too small: {TOO_SMALL:g}": small.results, "suggested (per seed)": suggested,
            f"too large: {TOO_LARGE:g}": too_large.results}
    for variant, results in rows.items():
        ctx.report.add("L9.b three learning rates", variant, final_train_loss=[final_loss(r) for r in results],
                       epochs_trained=[float(r.epochs) for r in results],
                       stopped_by_guard=f"{sum(guard_stopped(r) for r in results if has_guard(r))} of {len(results)}")
    ctx.report.notes.append(f"L9.b the too-large run ({TOO_LARGE:g}) at seed {seeds[0]}: "
                            + (messages[0] if messages else "NonFiniteGuard did not stop it"))
    ctx.report.notes.append("L9.b each seed's run at its suggestion: " + "; ".join(
        suggested_run(t.suggestion or TOO_SMALL).command(s) for s, t in zip(seeds, tests)))
    curves = {label: stack([r.curves["train/loss"] for r in results]) for label, results in rows.items()}
    large = f"too large: {TOO_LARGE:g}"
    ctx.figure(lines_figure({"stable rates": {k: v for k, v in curves.items() if k != large},
                             f"{large}: stopped by NonFiniteGuard": {large: curves[large]}},
                            "L9.b training loss at three learning rates (SGD)",
                            ylabel="training MSE (target units²), log scale", log_y=True), "l9b_three_rates")


def suggested_run(lr: float) -> Run:
    return lr_run(SUGGESTED, float(f"{lr:.3g}"), *QUIET)


def has_guard(result: RunResult) -> bool:
    return any(isinstance(c, NonFiniteGuard) for c in result.callbacks)


def schedules(ctx: LessonContext) -> None:
    """L9.c: constant, step decay, cosine and one-cycle from the same rate, the rate read from LearningRateMonitor."""
    runs = {name: ctx.run(run, [LearningRateMonitor(logging_interval="epoch")]) for name, run in SCHEDULED.items()}
    for name, seeds in runs.items():
        ctx.report.add(f"L9.c schedules from lr {CONSTANT:g}, {EPOCHS} epochs", name,
                       final_val_loss=seeds.each(lambda r: final_loss(r, "val/loss")),
                       final_train_loss=seeds.each(final_loss))
    ctx.report.add_key(**{"L9.c best of cosine/one-cycle over constant (final val loss)":
                          [schedule_gain(ctx.by_seed[s]) for s in ctx.seeds_for(SCHEDULED["constant"])]})
    ctx.report.notes.append("L9.c the scheduler is stepped once per epoch (the system's lr_scheduler); with full "
                            "batch that is once per optimizer step, so OneCycleLR's total_steps is the epochs.")
    ctx.figure(schedules_figure(runs), "l9c_schedules")


def monitored_lr(result: RunResult) -> list[float]:
    """The learning rate LearningRateMonitor recorded at each epoch's start (its one optimizer, SGD)."""
    (lrs,) = result.callback(LearningRateMonitor).lrs.values()
    return list(lrs)


def schedules_figure(runs: Mapping[str, Any]) -> Figure:
    return lines_figure({"learning rate (read by LearningRateMonitor)": {
                             n: stack([monitored_lr(r) for r in s.results]) for n, s in runs.items()},
                         "validation MSE (target units²)": {n: s.curves("val/loss") for n, s in runs.items()}},
                        f"L9.c schedules at the same budget ({EPOCHS} epochs, SGD, from lr {CONSTANT:g}), log scales",
                        log_y=True)
