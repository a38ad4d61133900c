"""L8.c of the optimizers lesson: SGD, momentum, RMSprop, Adam and AdamW on a real task, the moons MLP, each at its
best rate (chosen on a validation split) from the same 4-value log grid, with loss curves banded over seeds.

The runs are ``configs/moons_dropout.yaml``'s plain run (no dropout) made cheap for a lesson: full batch for 40
epochs on 1000 points, so the 5 seeds of each (optimizer, rate) train as one seed ensemble in about half a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure, sweep_plot
from dlbasics.lessons.runner import Run, RunResult, SeedRuns, stack

LRS = (1e-3, 1e-2, 1e-1, 1.0)  # the same decades for every optimizer: 4 fits each
EPOCHS = 40
# Every optimizer gets its torch defaults but the rate: weight decay 0, except AdamW's own decoupled 0.01 (the
# config's AdamW weight_decay 1e-3 would otherwise carry over into SGD, RMSprop and Adam when the class changes).
SETTINGS = {
    "SGD": ("--model.optimizer=torch.optim.SGD", "--model.optimizer.weight_decay=0.0"),
    "SGD + momentum 0.9": ("--model.optimizer=torch.optim.SGD", "--model.optimizer.momentum=0.9",
                           "--model.optimizer.weight_decay=0.0"),
    "RMSprop": ("--model.optimizer=torch.optim.RMSprop", "--model.optimizer.weight_decay=0.0"),
    "Adam": ("--model.optimizer=torch.optim.Adam", "--model.optimizer.weight_decay=0.0"),
    "AdamW": ("--model.optimizer=torch.optim.AdamW", "--model.optimizer.weight_decay=0.01"),
}
# The config's plain run (dropout 0), full batch, 40 epochs, 1000 points with 20% held out for validation (the
# config validates on the test split); without its callbacks: NonFiniteGuard would stop every seed of the
# ensemble when one diverges at the grid's top rate, which the lesson counts instead.
TASK = ("--model.network.dropout=0.0", "--data.n_samples=1000", "--data.val_fraction=0.2", "--data.batch_size=full",
        f"--trainer.max_epochs={EPOCHS}", "--trainer.callbacks=[]")
SLUGS = {"SGD": "sgd", "SGD + momentum 0.9": "momentum", "RMSprop": "rmsprop", "Adam": "adam", "AdamW": "adamw"}
MOONS = {(opt, lr): Run(f"moons_{SLUGS[opt]}_lr{lr:g}", "moons_dropout.yaml",
                        (*TASK, *SETTINGS[opt], f"--model.optimizer.lr={lr:g}")) for opt in SETTINGS for lr in LRS}
NAMES = {opt: tuple(MOONS[opt, lr].name for lr in LRS) for opt in SETTINGS}
LOSS = 0.25  # "has learnt the moons": chance is ln 2 = 0.69, the adaptive optimizers end near 0.15
ACC = 0.92  # the task's level: the moons MLP gets 0.93-0.95 (the configs' notebooks)
ADAPTIVE = ("RMSprop", "Adam", "AdamW")
SETTING = (f"the project's own setting: configs/moons_dropout.yaml without dropout, 1000 points (20% validation, "
           f"25% test), full batch for {EPOCHS} epochs, each optimizer at the rate of the grid 1e-3, 1e-2, 0.1, 1 "
           "with the lowest validation loss at this seed")


def val_loss(result: RunResult) -> float:
    """Eval-mode loss over the validation split; inf for a run that diverged, so it is never the best."""
    loss = result.evaluate("val")["loss"]
    return loss if np.isfinite(loss) else float("inf")


def best(results: Mapping[str, RunResult], optimizer: str) -> RunResult:
    """The optimizer's run (at this seed) with the lowest validation loss over the grid."""
    return min((results[name] for name in NAMES[optimizer]), key=val_loss)


def epochs_to(result: RunResult, loss: float = LOSS) -> int:
    """The first epoch (1-based) whose validation loss is below ``loss``; the budget + 1 if none is."""
    below = np.flatnonzero(np.asarray(result.curves["val/loss"]) < loss)
    return int(below[0]) + 1 if below.size else len(result.curves["val/loss"]) + 1


def best_test_acc(optimizer: str) -> Any:
    return lambda results: best(results, optimizer).evaluate("test")["acc"]


def acc_gain(results: Mapping[str, RunResult]) -> float:
    """Adam's test accuracy minus plain SGD's, both at their best rate: the same data, so the same test points."""
    return best_test_acc("Adam")(results) - best_test_acc("SGD")(results)


def epochs_ratio(optimizer: str) -> Any:
    """Epochs to the validation loss ``LOSS``, the optimizer's over plain SGD's, both at their best rate."""
    return lambda results: epochs_to(best(results, optimizer)) / epochs_to(best(results, "SGD"))


CLAIMS = (
    *(Claim("L8.c", f"on the moons MLP {opt} at its best grid rate (picked on validation) classifies at least "
          f"{ACC:.0%} of the test points after {EPOCHS} full-batch epochs (measure: its eval-mode test accuracy)",
          best_test_acc(opt), runs=NAMES[opt], above=ACC, setting=SETTING) for opt in ADAPTIVE),
    *(Claim("L8.c", f"on the moons MLP {opt} gets its validation loss below {LOSS:g} in fewer than half the epochs "
          "plain SGD needs, each at its best grid rate (measure: its epochs over SGD's; a run that never gets "
          f"there counts {EPOCHS + 1})", epochs_ratio(opt), runs=NAMES[opt] + NAMES["SGD"], below=0.5,
          setting=SETTING) for opt in ("Adam", "RMSprop")),
    Claim("L8.c", f"on the moons MLP Adam at its best grid rate classifies more test points than plain SGD at its "
          f"best after the same {EPOCHS} epochs (measure: Adam's test accuracy minus SGD's)", acc_gain,
          runs=NAMES["Adam"] + NAMES["SGD"], above=0.0, setting=SETTING),
)


def moons_part(ctx: LessonContext) -> None:
    """L8.c: every optimizer at every grid rate; the report and figures at each seed's best rate."""
    runs = {key: ctx.run(run) for key, run in MOONS.items()}
    by_seed = [ctx.by_seed[seed] for seed in next(iter(runs.values())).seeds]  # {run name: result} per seed
    for (opt, lr), seed_runs in runs.items():
        ctx.report.add("L8.c moons MLP, validation by learning rate", f"{opt} lr {lr:g}",
                       val_loss=seed_runs.each(val_loss), val_acc=seed_runs.each(lambda r: r.evaluate("val")["acc"]))
    for opt in SETTINGS:
        chosen = [best(results, opt) for results in by_seed]
        ctx.report.add(f"L8.c moons MLP at each seed's best rate ({EPOCHS} full-batch epochs)", opt,
                       best_lr=", ".join(sorted({r.name.rpartition("_lr")[2] for r in chosen}, key=float)),
                       val_loss=[val_loss(r) for r in chosen], test_acc=[r.evaluate("test")["acc"] for r in chosen],
                       epochs_to_val_loss=[epochs_to(r) for r in chosen])
    ctx.report.notes.append(f"L8.c: the best rate is picked per seed on the validation split (20% of the points), "
                            f"never on the test split; epochs_to_val_loss: first epoch below {LOSS:g}, "
                            f"{EPOCHS + 1} = never.")
    ctx.figure(curves_figure(by_seed), "l8c_moons_loss_curves")
    ctx.figure(rate_figure(runs), "l8c_moons_accuracy_by_rate")


def curves_figure(by_seed: list[Mapping[str, RunResult]]) -> Figure:
    """Training and validation loss by epoch, every optimizer at each seed's best rate, banded over the seeds."""
    panels: dict[str, dict[str, np.ndarray]] = {"validation loss": {}, "training loss": {}}
    for opt in SETTINGS:
        chosen = [best(results, opt) for results in by_seed]
        rates = " or ".join(sorted({r.name.rpartition("_lr")[2] for r in chosen}, key=float))
        for panel, metric in (("validation loss", "val/loss"), ("training loss", "train/loss")):
            panels[panel][f"{opt} (lr {rates})"] = stack([r.curves[metric] for r in chosen])
    fig = lines_figure(panels, "L8.c moons MLP: each optimizer at its best learning rate (picked on validation)",
                       ylabel="cross-entropy loss", log_y=True)
    fig.axes[0].axhline(LOSS, color="grey", linestyle="--", linewidth=1)
    fig.axes[0].set_title(f"validation loss (dashed: {LOSS:g})")
    return fig


def rate_figure(runs: Mapping[tuple[str, float], SeedRuns]) -> Figure:
    accuracy = {opt: [runs[opt, lr].each(lambda r: r.evaluate("val")["acc"]) for lr in LRS] for opt in SETTINGS}
    return sweep_plot(LRS, accuracy, f"L8.c moons MLP: accuracy after {EPOCHS} epochs by rate", "learning rate",
                      "validation accuracy (eval mode)", log_x=True)
