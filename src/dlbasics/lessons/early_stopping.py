"""L12 Early stopping: Lightning's ``EarlyStopping`` and ``ModelCheckpoint`` on the L3 net that memorises its noise.

The early-stopped run is ``configs/sine_early_stopping.yaml``: L3.b's "shows it" run (1 -> 64 -> 64 -> 1 for 500
epochs on 20 points of noise std 1.0) with two callbacks, ``EarlyStopping`` and a ``ModelCheckpoint`` of the best
epoch, both on ``val/loss``. The full-budget run is that same L3 run without them. Three models are tested on the
100 test points: the best epoch loaded back from its checkpoint, the model as early stopping left it, and the
model trained for all 500 epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from lightning.pytorch.callbacks import EarlyStopping
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlbasics.figures import new_figure
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.overfitting import BIG
from dlbasics.lessons.plots import band, caption
from dlbasics.lessons.runner import Run, RunResult, SeedRuns
from dlbasics.lessons.stats import estimate

# The settings of configs/sine_early_stopping.yaml (tests/test_early_stopping.py checks that they agree).
MONITOR = "val/loss"  # validation MSE on 100 points drawn apart from the test points (their own noise)
# Full-batch Adam at lr 0.05 makes val/loss swing by a factor of 2 within a few epochs over the first ~30 while the
# net fits the signal; a patience of 3 or 5 epochs (Lightning's default is 3) stops on one of those swings, before
# the net has fit the sine. 20 epochs outlasts the swings and is still short against the 500-epoch budget (4%).
PATIENCE = 20
# Any decrease counts as an improvement: val/loss falls and then rises, with no long plateau for a threshold to cut.
MIN_DELTA = 0.0

FULL = Run("full_budget", BIG[0.0].config, BIG[0.0].overrides, test=True, fast=BIG[0.0].fast)
STOPPED = Run("early_stopped", "sine_early_stopping.yaml", test=True, fast=BIG[0.0].fast)
RUNS = (STOPPED, FULL)
SETTING = ("L3.b's shows-it net (1 -> 64 -> 64 -> 1, 500 epochs, training noise std 1.0), which memorises its "
           "noise: L12 has no published settings, and early stopping needs a run that overfits")
CLOSE_UP = 150  # epochs shown close up: past every seed's stop
VARIANTS = {"best": "best epoch (checkpoint loaded back)", "stopped": "early-stopped (as it stopped)",
            "full": "full budget ({epochs} epochs)"}  # the variants ``tested_mse`` measures, and their labels


def best_epoch_model(result: RunResult) -> RunResult:
    """The run with its model loaded back from its best-epoch checkpoint, on the same device."""
    model = type(result.model).load_from_checkpoint(result.best_checkpoint, map_location=result.model.device)
    return replace(result, model=model)


def tested_mse(runs: dict[str, RunResult], variant: str) -> float:
    """A variant's MSE over the whole test split (eval mode): ``best``, ``stopped`` or ``full``."""
    result = runs[FULL.name] if variant == "full" else runs[STOPPED.name]
    return (best_epoch_model(result) if variant == "best" else result).evaluate("test")["loss"]


def lower(better: str, worse: str, text: str) -> Claim:
    return Claim("L12.b", f"{text} (measure: test MSE of the {worse} model minus the {better} one's)",
                 lambda r: tested_mse(r, worse) - tested_mse(r, better), runs=(STOPPED.name, FULL.name), above=0.0,
                 setting=SETTING)


CLAIMS = (
    Claim("L12.a", f"early stopping (patience {PATIENCE} on {MONITOR}) ends training before the budget (measure: "
          "epochs trained over the full budget's)", lambda r: r[STOPPED.name].epochs / r[FULL.name].epochs,
          runs=(STOPPED.name, FULL.name), below=1.0, setting=SETTING),
    lower("best", "full", "the best-epoch checkpoint, loaded back, has a lower test MSE than the model trained "
          "for the full budget"),
    lower("stopped", "full", "the model as early stopping left it has a lower test MSE than the full-budget one"),
    lower("best", "stopped", f"loading the best epoch back beats keeping the model as it stopped, {PATIENCE} epochs "
          "later: its test MSE is lower"),
)


def best_epoch(result: RunResult) -> int:
    """The epoch of the lowest ``val/loss``: the one the checkpoint holds."""
    return int(np.argmin(result.curves[MONITOR]))


def mean_line(ax: Axes, curves: np.ndarray, label: str) -> None:
    """The mean over seeds of ``curves`` (seeds, epochs, NaN after a seed stopped) with its band, on a log axis."""
    xs = np.arange(curves.shape[1])
    (line,) = ax.plot(xs, np.nanmean(curves, axis=0), label=label)
    band(ax, xs, curves, line.get_color(), positive=True)


def curves_figure(stopped: SeedRuns, full: SeedRuns, close_up: int = CLOSE_UP) -> Figure:
    """The full budget's loss curves with the seeds' best and stop epochs; each seed's validation loss close up,
    until it stopped and (dashed) how its full-budget run went on."""
    fig = new_figure(11.5, 4.4)
    whole, close = fig.subplots(1, 2)
    stops = [r.epochs - 1 for r in stopped.results]
    bests = [best_epoch(r) for r in stopped.results]
    mean_line(whole, full.curves("train/loss"), "train loss (training batches)")
    mean_line(whole, full.curves(MONITOR), "validation loss")
    whole.axvspan(min(bests), max(bests), color="tab:green", alpha=0.25, label="best epochs (range over seeds)")
    whole.axvspan(min(stops), max(stops), color="grey", alpha=0.3, label="stop epochs (range over seeds)")
    whole.set_title(f"{full.name}: all {full.first.epochs} epochs, mean over seeds")
    for i, (seed, result, rest) in enumerate(zip(stopped.seeds, stopped.results, full.results)):
        val = result.curves[MONITOR]
        (line,) = close.plot(val, linewidth=1.2, label=f"seed {seed}")
        after = np.arange(stops[i], min(close_up, len(rest.curves[MONITOR])))
        close.plot(after, np.asarray(rest.curves[MONITOR])[after], "--", color=line.get_color(), linewidth=0.8,
                   label="full budget past the stop" if i == 0 else None)
        close.plot(bests[i], val[bests[i]], "v", color=line.get_color(), markeredgecolor="black", markersize=7,
                   label="best epoch (checkpoint)" if i == 0 else None)
        close.plot(stops[i], val[stops[i]], "X", color=line.get_color(), markeredgecolor="black", markersize=7,
                   label="stop epoch" if i == 0 else None)
    close.set_title(f"{stopped.name}, patience {PATIENCE}: validation loss of each seed")
    for ax in (whole, close):
        ax.set(xlabel="epoch", ylabel="MSE", yscale="log")
        ax.grid(alpha=0.3)
    whole.legend(fontsize=8, loc="upper right")
    close.legend(fontsize=7, ncol=2, loc="upper right")
    fig.suptitle(f"L12.a early stopping on {MONITOR}: 1-64-64-1 on 20 points with noise std 1.0, Adam lr 0.05")
    caption(fig, {len(full.results)}, mark="left panel, line")
    return fig


def variants_figure(by_variant: dict[str, Sequence[float]]) -> Figure:
    """Test MSE of each variant: the mean over seeds with its 95% interval, and each seed's values joined."""
    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    values = np.asarray(list(by_variant.values()))  # (variants, seeds)
    xs = np.arange(len(by_variant))
    ax.plot(xs, values, color="grey", alpha=0.5, linewidth=1, marker=".")
    ax.plot([], [], color="grey", alpha=0.5, linewidth=1, marker=".", label="one seed")
    for x, row in zip(xs, values):
        est = estimate(list(row))
        ax.errorbar([x], [est.mean], yerr=[[est.mean - est.low], [est.high - est.mean]], marker="o", capsize=4,
                    color="tab:blue", label="mean over seeds" if x == 0 else None)
    ax.set_xticks(xs, [label.replace(" (", "\n(") for label in by_variant], fontsize=8)
    ax.set_xlim(-0.5, len(by_variant) - 0.5)
    ax.set(ylabel="test MSE (100 test points)", title="L12.b test MSE: best epoch vs early-stopped vs full budget")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    caption(fig, {values.shape[1]}, mark="point", spread="bar")
    return fig


def run(ctx: LessonContext) -> None:
    report = ctx.report
    stopped, full = ctx.run(STOPPED), ctx.run(FULL)
    by_seed = [ctx.by_seed[seed] for seed in stopped.seeds]
    tests = {label.format(epochs=full.first.epochs): [tested_mse(runs, variant) for runs in by_seed]
             for variant, label in VARIANTS.items()}
    ctx.figure(curves_figure(stopped, full), "l12a_loss_curves")
    ctx.figure(variants_figure(tests), "l12b_test_mse")

    stoppers = [r.callback(EarlyStopping) for r in stopped.results]
    report.add("L12.a when training stopped", stopped.name, epochs_trained=stopped.each(lambda r: r.epochs),
               best_epoch=stopped.each(best_epoch), stopped_epoch=[float(s.stopped_epoch) for s in stoppers],
               best_val_mse=stopped.each(lambda r: min(r.curves[MONITOR])))
    report.add("L12.a when training stopped", full.name, epochs_trained=full.each(lambda r: r.epochs),
               best_epoch=full.each(best_epoch), last_val_mse=full.last(MONITOR))
    for label, values in tests.items():
        report.add("L12.b test MSE", label, test_mse=values)
    # Did stopping miss a later, lower val/loss? The full-budget run of the same seed trains the same epochs first.
    missed = sum(min(f.curves[MONITOR]) < min(s.curves[MONITOR]) for s, f in zip(stopped.results, full.results))
    report.add_key(**{"epochs trained, early-stopped": stopped.each(lambda r: r.epochs),
                      **{f"test MSE, {label}": values for label, values in tests.items()}})
    report.add_key(**{f"seeds whose full budget later beats the checkpoint's {MONITOR}": f"{missed} of {len(full.seeds)}"})
    report.notes.append(
        f"EarlyStopping(monitor={MONITOR}, patience={PATIENCE}, min_delta={MIN_DELTA}) and ModelCheckpoint(monitor="
        f"{MONITOR}, save_top_k=1) come from configs/sine_early_stopping.yaml. Validation and test are independent "
        "draws of 100 points (the same evenly spaced x, their own noise std 0.2): the best epoch is chosen without "
        "seeing a test label. Each test MSE is the model's MSE over the whole test split in eval mode; 'best epoch' "
        "is that epoch's checkpoint loaded back with load_from_checkpoint.")
