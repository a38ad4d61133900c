"""L11 Normalization and residual connections: the L2.c deep sigmoid net with BatchNorm, LayerNorm or skips."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from statistics import fmean as mean

from dlbasics.callbacks import ActivationStats, WeightHistograms
from dlbasics.lessons.backprop_lesson import DEEP, first_hidden, hidden_grads
from dlbasics.lessons.claims import PUBLISHED, Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure, sweep_plot
from dlbasics.lessons.runner import Run, RunResult, SeedRuns

# The config's diagnostics without their per-run figures: the lesson draws its own comparisons, and the per-run
# gradient-flow and activation figures of 5 seeds side by side took two thirds of its time. The same callbacks
# measure the same numbers (ModelCheckpoint: lessons keep no checkpoints anyway).
NO_RUN_FIGURES = ("--trainer.callbacks=[{class_path: dlbasics.callbacks.NonFiniteGuard}, "
                  "{class_path: dlbasics.callbacks.GradientFlowMonitor, init_args: {plot_every_n_epochs: 0}}, "
                  "{class_path: dlbasics.callbacks.ActivationStats, init_args: {plot: false}}]")


def deep(name: str, *overrides: str) -> Run:
    """The L2.c deep net of configs/deep_sigmoid.yaml (6 hidden layers of 32 sigmoid units, Adam lr 0.07, 30
    full-batch epochs, linear task, N=200) with these overrides, without the per-run figures."""
    return Run(name, DEEP["sigmoid"].config, (NO_RUN_FIGURES, *overrides))


PLAIN = deep("deep_sigmoid", *DEEP["sigmoid"].overrides)  # as published (L2.c)
RELU = deep("deep_relu", *DEEP["relu"].overrides)


def sigmoid_with(option: str, *budget: str) -> Run:
    """The published deep sigmoid net with one network option switched on (and another budget)."""
    suffix = "".join(f"_{arg.rpartition('=')[2]}ep" for arg in budget)
    return deep(f"deep_sigmoid_{option}{suffix}", *DEEP["sigmoid"].overrides, f"--model.network.{option}=true", *budget)


FIXES = {"BatchNorm": sigmoid_with("batch_norm"), "LayerNorm": sigmoid_with("layer_norm"),
         "residual": sigmoid_with("residual")}
# "Shows it": at 30 epochs the residual net is still climbing, and BatchNorm's running statistics, which eval mode
# uses, lag the weights that Adam lr 0.07 moves fast (in train mode, with batch statistics, it is there already).
# At 45 epochs BatchNorm's eval-mode accuracy still jitters from seed to seed with the weights (and with the float
# rounding of the thread count); at 90 the running statistics have caught up in every seed.
EPOCHS = {"BatchNorm": 90, "residual": 45}
SHOWS_IT = {"BatchNorm": "90 full-batch epochs instead of 30: BatchNorm's running statistics, which eval mode uses, "
                         "catch up with the weights",
            "residual": "45 full-batch epochs instead of 30: the residual net needs a few more steps"}
LONGER_FIXES = {fix: sigmoid_with(option, f"--trainer.max_epochs={EPOCHS[fix]}")
                for fix, option in (("BatchNorm", "batch_norm"), ("residual", "residual"))}
LABELS = {PLAIN.name: "sigmoid (published L2.c)", **{run.name: f"sigmoid + {fix}" for fix, run in FIXES.items()},
          RELU.name: "ReLU (reference)", **{run.name: f"sigmoid + {fix}, {EPOCHS[fix]} epochs"
                                            for fix, run in LONGER_FIXES.items()}}
RUNS = (PLAIN, *FIXES.values(), RELU, *LONGER_FIXES.values())
GAIN = 10.0  # "raises the first hidden layer's mean |grad| by more than 10x"
ACCURACY = 0.95  # "brings its training accuracy to at least 0.95"
REACHED = ACCURACY - 0.5 / 200  # at least 190 of the 200 training points (float32 190/200 is just below 0.95)

__all__ = ["CLAIMS", "RUNS", "run"]


def gain(result: RunResult, plain: RunResult) -> float:
    """How many times the published sigmoid net's first-layer mean |grad| a variant's is, at the same seed (both
    start from the same Linear weights: a norm layer draws no random numbers)."""
    return first_hidden(result) / first_hidden(plain)


def train_acc(result: RunResult) -> float:
    """Accuracy of the trained model over the whole training split, in eval mode (BatchNorm: running statistics)."""
    return result.evaluate("train")["acc"]


def activation_layers(result: RunResult, stat: str) -> list[float]:
    """``stat`` (``std``, ``saturated_frac``) of each hidden activation at the last epoch, in forward order."""
    return [layer[stat] for layer in result.callback(ActivationStats).history[-1]["layers"].values()]


def raises_gradient(fix: str) -> Claim:
    run = FIXES[fix]
    return Claim("L11", f"{fix} raises the deep sigmoid net's first hidden layer's mean |grad| (averaged over the "
                 f"epochs) by more than {GAIN:g}x (measure: log10 of its |grad| over the published net's, in orders "
                 "of magnitude)", lambda r: math.log10(gain(r[run.name], r[PLAIN.name])), runs=(run.name, PLAIN.name),
                 above=math.log10(GAIN))


def trains(fix: str, run: Run, epochs: int, setting: str = PUBLISHED) -> Claim:
    return Claim("L11", f"with {fix} the deep sigmoid net reaches a training accuracy of at least {ACCURACY:g} within "
                 f"{epochs} epochs: at least 190 of its 200 points (measure: eval-mode accuracy over the training "
                 "split)", lambda r: train_acc(r[run.name]), runs=(run.name,), above=REACHED, setting=setting)


CLAIMS = (
    raises_gradient("BatchNorm"),
    trains("BatchNorm", FIXES["BatchNorm"], 30),
    trains("BatchNorm", LONGER_FIXES["BatchNorm"], EPOCHS["BatchNorm"], SHOWS_IT["BatchNorm"]),
    raises_gradient("residual"),
    trains("residual", FIXES["residual"], 30),
    trains("residual", LONGER_FIXES["residual"], EPOCHS["residual"], SHOWS_IT["residual"]),
    Claim("L11", f"LayerNorm does not repair it: with LayerNorm the deep sigmoid net stays below a training accuracy "
          f"of {ACCURACY:g} in the 30 epochs (measure: eval-mode accuracy over the training split)",
          lambda r: train_acc(r[FIXES["LayerNorm"].name]), runs=(FIXES["LayerNorm"].name,), below=REACHED),
)


def per_layer(runs: Mapping[str, SeedRuns], measure: Callable[[RunResult], list[float]]) -> dict[str, list[list[float]]]:
    """``{variant label: [per-seed values at layer 1, at layer 2, ...]}``, as ``sweep_plot`` draws them."""
    return {LABELS[name]: [list(layer) for layer in zip(*(measure(r) for r in seeds.results))]
            for name, seeds in runs.items()}


def gradient_figures(ctx: LessonContext, runs: Mapping[str, SeedRuns]) -> None:
    layers = list(range(1, len(hidden_grads(runs[PLAIN.name].first)) + 1))
    fig = sweep_plot(layers, per_layer(runs, lambda r: [mean(g) for g in hidden_grads(r).values()]),
                     "L11 gradient flow: 6 hidden layers of 32 on the linear task",
                     "hidden Linear layer (1 = nearest the input)", "mean |grad| of its weights, epoch mean")
    fig.axes[0].set_yscale("log")
    ctx.figure(fig, "l11_gradient_flow")
    first = {LABELS[name]: [next(iter(hidden_grads(r).values())) for r in seeds.results] for name, seeds in runs.items()}
    ctx.figure(lines_figure({"first hidden Linear layer": first}, "L11 the first hidden layer's gradient, epoch by "
                            "epoch", ylabel="mean |grad| of its weights", log_y=True),
               "l11_first_layer_gradient")


def activation_figures(ctx: LessonContext, runs: Mapping[str, SeedRuns]) -> None:
    layers = list(range(1, len(activation_layers(runs[PLAIN.name].first, "std")) + 1))
    sigmoids = {name: seeds for name, seeds in runs.items() if name != RELU.name}  # ReLU units do not saturate
    for stat, title, what, shown in (
            ("std", "spread of the activations", "std of the activation outputs (log scale)", runs),
            ("saturated_frac", "saturated sigmoid units", "saturated fraction (output < 0.01 or > 0.99)", sigmoids)):
        fig = sweep_plot(layers, per_layer(shown, lambda r, s=stat: activation_layers(r, s)),
                         f"L11 {title} at the last epoch", "hidden activation layer (1 = nearest the input)", what)
        if stat == "std":  # ReLU's grow to ~20, the sigmoid nets' stay below 0.5
            fig.axes[0].set_yscale("log")
        ctx.figure(fig, f"l11_activation_{stat}")


def curves_figure(ctx: LessonContext, runs: Mapping[str, SeedRuns], title: str, filename: str) -> None:
    fig = lines_figure({metric: {LABELS[name]: seeds.curves(metric) for name, seeds in runs.items()}
                        for metric in ("train/loss", "train/acc")},
                       f"{title}\n(train/*: the whole training set as one batch, in train mode)", log_y=True)
    fig.axes[1].set_yscale("linear")  # the loss spans decades, the accuracy 0.5 to 1
    ctx.figure(fig, filename)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    # TensorBoard histograms of each layer's weights and gradients, every 3rd of the 30 epochs and at the start.
    runs = {run.name: ctx.run(run, [WeightHistograms(every_n_epochs=3, bins=30)])
            for run in (PLAIN, *FIXES.values(), RELU)}
    plain = runs[PLAIN.name]
    gradient_figures(ctx, runs)
    activation_figures(ctx, runs)
    curves_figure(ctx, runs, "L11 training curves, 30 epochs", "l11_training_curves")
    longer = {run.name: ctx.run(run) for run in LONGER_FIXES.values()}
    curves_figure(ctx, longer, "L11 shows it: BatchNorm for 90 epochs, residual for 45", "l11_training_curves_shows_it")
    for table, rows in (("L11 deep net variants, 30 epochs (published)", runs),
                        ("L11 shows it (more epochs)", longer)):
        for name, seeds in rows.items():
            report.add(table, LABELS[name], first_hidden_grad=seeds.each(first_hidden),
                       train_acc_eval=seeds.each(train_acc), train_acc_batch=seeds.last("train/acc"),
                       train_loss_eval=seeds.each(lambda r: r.evaluate("train")["loss"]))
            if name in runs:
                report.add(table, LABELS[name], grad_gain=[gain(r, p) for r, p in zip(seeds.results, plain.results)])
    report.add_key(**{f"first hidden layer |grad| gain, {fix}": [gain(r, p) for r, p in
                                                                  zip(runs[run.name].results, plain.results)]
                      for fix, run in FIXES.items()})
    report.add_key(**{f"train acc (eval mode), {LABELS[name]}": seeds.each(train_acc)
                      for name, seeds in (*runs.items(), *longer.items())})
    report.notes.append("Gradients are those of the hidden Linear layers' weights, found by module type (a norm "
                        "layer's weight is not one), averaged over the epochs; the gain is a variant's first-layer "
                        "mean |grad| over the published sigmoid net's at the same seed. train_acc_eval is the trained "
                        "model's accuracy over the whole training split in eval mode (BatchNorm with its running "
                        "statistics); train_acc_batch is the last epoch's training batch, the whole training set, in "
                        "train mode (BatchNorm with that batch's statistics), before that epoch's step.")
    report.notes.append("LayerNorm normalizes each example over its 32 units, not each unit over the examples as "
                        "BatchNorm does: the differences between examples, which carry the class, are not scaled "
                        "back up, and the net collapses to predicting one class.")
