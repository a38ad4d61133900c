"""L10 Weight initialization: a deep tanh and a deep ReLU MLP started five ways, layer by layer."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from torch import nn

from dlbasics.callbacks import ActivationStats, WeightHistograms
from dlbasics.lessons.backprop_lesson import hidden_grads
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.normalization import NO_RUN_FIGURES
from dlbasics.lessons.plots import lines_figure, sweep_plot
from dlbasics.lessons.runner import Run, RunResult, SeedRuns

# Scheme -> (its overrides, its label). "too small" and "too large" are init normal at std 0.01 and 1.
INITS = {"constant": (("--model.network.init=constant",), "constant (every weight 0.01)"),
         "small": (("--model.network.init=normal", "--model.network.init_std=0.01"), "too small (normal, std 0.01)"),
         "large": (("--model.network.init=normal", "--model.network.init_std=1.0"), "too large (normal, std 1)"),
         "xavier": (("--model.network.init=xavier",), "Xavier (Glorot)"),
         "kaiming": (("--model.network.init=kaiming",), "Kaiming (He)")}
ACTIVATIONS = ("tanh", "relu")


def deep(act: str, init: str) -> Run:
    """configs/deep_init.yaml (10 hidden layers of 64, Adam lr 0.01, 50 full-batch epochs, quadratic
    task, N=200) with this activation and init, without the per-run figures (L11's ``NO_RUN_FIGURES``: the
    config's diagnostics, which measure the same numbers; the per-run figures took two thirds of the time)."""
    return Run(f"{act}_{init}", "deep_init.yaml", (NO_RUN_FIGURES, f"--model.network.activation={act}",
                                                  *INITS[init][0]))


BY = {(act, init): deep(act, init) for act in ACTIVATIONS for init in INITS}
RUNS = tuple(BY.values())
LABELS = {run.name: f"{act}, {INITS[init][1]}" for (act, init), run in BY.items()}
ACCURACY = 0.9  # the "stated training accuracy" of the speed claims
SPREAD = 2.0  # "stays within a factor 2 from the first to the last hidden layer"
SHRINK = 100.0  # "shrinks by more than 100x"

__all__ = ["CLAIMS", "RUNS", "run"]


def activation_std(result: RunResult, epoch: int = 0) -> list[float]:
    """Std of each hidden activation's outputs, in forward order, at ``epoch`` of ActivationStats' history: epoch 0
    is the initial weights (full batch: the one forward of epoch 0 runs before its optimizer step)."""
    return [layer["std"] for layer in result.callback(ActivationStats).history[epoch]["layers"].values()]


def hidden_grad(result: RunResult, epoch: int = 0) -> list[float]:
    """Mean |grad| of each hidden Linear layer's weights, in forward order, at ``epoch`` (0: the initial weights)."""
    return [grads[epoch] for grads in hidden_grads(result).values()]


def std_ratio(result: RunResult) -> float:
    """The first hidden layer's activation std over the last one's, at initialisation."""
    stds = activation_std(result)
    return stds[0] / stds[-1]


def epochs_to(result: RunResult, accuracy: float = ACCURACY) -> float:
    """The first epoch whose training batch (the whole set) reaches ``accuracy``; the budget + 1 when none does."""
    curve = result.curves["train/acc"]
    return next((epoch for epoch, acc in enumerate(curve) if acc >= accuracy), len(curve) + 1)


def unit_spread(result: RunResult) -> float:
    """The largest difference, over the hidden Linear layers, between two units' weight rows (and biases) of the
    trained model: 0 when every unit of each layer is still the same."""
    linear = [m for m in result.model.modules() if isinstance(m, nn.Linear)][:-1]  # (out, in) each; not the output
    return max(float((m.weight - m.weight[:1]).abs().max().max((m.bias - m.bias[:1]).abs().max()).detach())
               for m in linear)


def constant_moved(result: RunResult) -> float:
    """How far training moved the hidden Linear weights from the constant 0.01 (the largest |w - 0.01|): the
    symmetry claim is about weights that did change."""
    linear = [m for m in result.model.modules() if isinstance(m, nn.Linear)][:-1]
    return max(float((m.weight.detach() - 0.01).abs().max()) for m in linear)


def faster(act: str, init: str) -> Claim:
    fast, slow = BY[(act, init)].name, BY[(act, "small")].name
    return Claim("L10", f"with {INITS[init][1]} the {act} net reaches a training accuracy of {ACCURACY:g} in fewer "
                 f"epochs than with the too-small init (measure: the too-small init's epochs minus {init}'s; a run "
                 "that never reaches it counts as the budget + 1)",
                 lambda r: epochs_to(r[slow]) - epochs_to(r[fast]), runs=(fast, slow), above=0.0)


CLAIMS = (
    Claim("L10", f"with Kaiming init the ReLU net's activation std stays within a factor {SPREAD:g} from the first to "
          "the last hidden layer at initialisation (measure: first layer's std over the last's)",
          lambda r: std_ratio(r[BY[("relu", "kaiming")].name]), runs=(BY[("relu", "kaiming")].name,),
          above=1 / SPREAD, below=SPREAD),
    Claim("L10", f"with init normal std 0.01 the ReLU net's activation std shrinks by more than {SHRINK:g}x from the "
          "first to the last hidden layer at initialisation (measure: first layer's std over the last's)",
          lambda r: std_ratio(r[BY[("relu", "small")].name]), runs=(BY[("relu", "small")].name,), above=SHRINK),
    Claim("L10", "with constant init all units of each hidden layer are still identical after training: the "
          "symmetry is never broken (measure: the largest difference between two units' weights, over the layers)",
          lambda r: max(unit_spread(r[BY[(act, "constant")].name]) for act in ACTIVATIONS),
          runs=tuple(BY[(act, "constant")].name for act in ACTIVATIONS), below=1e-6),
    faster("tanh", "xavier"),
    faster("relu", "kaiming"),
)


def per_layer(runs: Mapping[str, SeedRuns], measure: Callable[[RunResult], list[float]]) -> dict[str, list[list[float]]]:
    """``{variant label: [per-seed values at layer 1, at layer 2, ...]}``, as ``sweep_plot`` draws them."""
    return {LABELS[name]: [list(layer) for layer in zip(*(measure(r) for r in seeds.results))]
            for name, seeds in runs.items()}


def log10(value: float) -> float:
    """log10 of a std or |grad|; NaN (a point left out) for an exact 0, a layer whose every unit is dead."""
    return math.log10(value) if value > 0 else math.nan


def layer_figures(ctx: LessonContext, runs: Mapping[str, SeedRuns], act: str) -> None:
    mine = {name: seeds for name, seeds in runs.items() if name.startswith(f"{act}_")}
    last = mine[BY[(act, "xavier")].name].first.epochs - 1
    layers = list(range(1, 11))
    for epoch, when in ((0, "at initialisation (epoch 0)"), (last, f"after {last + 1} epochs")):
        for what, measure, ylabel in (
                ("activation std", activation_std, "log10 of the std of its activation outputs"),
                ("gradient", hidden_grad, "log10 of the mean |grad| of its weights")):
            # log10 per seed: the values span 20 decades, and an interval of the logs cannot reach below 0
            series = per_layer(mine, lambda r, e=epoch, m=measure: [log10(v) for v in m(r, e)])
            series = {label if all(math.isfinite(v) for layer in points for v in layer) else
                      f"{label}\n  (not drawn where a seed's value is exactly 0: every unit dead)": points
                      for label, points in series.items()}
            fig = sweep_plot(layers, series,
                             f"L10 {act}: {what} per layer, {when}", "hidden layer (1 = nearest the input)", ylabel)
            fig.set_size_inches(8.5, 3.9)
            fig.axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
            ctx.figure(fig, f"l10_{act}_{what.split()[-1]}_epoch{epoch}")


def run(ctx: LessonContext) -> None:
    report = ctx.report
    # TensorBoard histograms of each layer's weights (from the initial ones) and gradients, every 5th of 50 epochs.
    runs = {run.name: ctx.run(run, [WeightHistograms(every_n_epochs=5, bins=30)]) for run in RUNS}
    for act in ACTIVATIONS:
        layer_figures(ctx, runs, act)
        mine = {name: seeds for name, seeds in runs.items() if name.startswith(f"{act}_")}
        fig = lines_figure({panel: {LABELS[name]: seeds.curves(metric) for name, seeds in mine.items()}
                            for panel, metric in (("training loss (cross-entropy, nats)", "train/loss"),
                                                  ("training accuracy", "train/acc"))},
                           f"L10 {act}, 10 hidden layers of 64: training curves\n(the whole training set as one "
                           "batch, before each epoch's step)", log_y=True)
        fig.axes[1].set_yscale("linear")  # the loss spans decades (std 1 ReLU: 10^7 at first), the accuracy 0.5 to 1
        ctx.figure(fig, f"l10_{act}_training_curves")
    for name, seeds in runs.items():
        report.add("L10 deep nets", LABELS[name], std_first=seeds.each(lambda r: activation_std(r)[0]),
                   std_last=seeds.each(lambda r: activation_std(r)[-1]), std_ratio=seeds.each(std_ratio),
                   grad_first=seeds.each(lambda r: hidden_grad(r)[0]), grad_last=seeds.each(lambda r: hidden_grad(r)[-1]),
                   epochs_to_acc=seeds.each(epochs_to), final_train_acc=seeds.last("train/acc"),
                   unit_spread=seeds.each(unit_spread))
    report.add_key(**{f"max |w - 0.01| after training, {act} constant": runs[BY[(act, "constant")].name].each(
        constant_moved) for act in ACTIVATIONS})
    report.notes.append("At initialisation means epoch 0 of ActivationStats and GradientFlowMonitor: with the whole "
                        "training set as one batch, epoch 0's one forward and backward run on the initial weights, "
                        "before its optimizer step. std_* is the std of a hidden activation's outputs over the 200 "
                        "points and 64 units; grad_* the mean |grad| of a hidden Linear layer's weights; first and "
                        "last are hidden layers 1 and 10. epochs_to_acc is the first epoch whose training batch has "
                        f"an accuracy of at least {ACCURACY:g} (51: never within the 50 epochs).")
    report.notes.append("Xavier and Kaiming take the gain of the activation (torch.nn.init.calculate_gain). On a "
                        "square 64 -> 64 layer they then draw the same std, gain * sqrt(2 / (64 + 64)) = gain / "
                        "sqrt(64): the nets differ only in the first (2 -> 64) and output (64 -> 2) layers. The "
                        "textbook contrast, Glorot's gain 1 on a ReLU net (the variance halves at each layer), is "
                        "not what init xavier draws here.")
    report.notes.append("With Adam the too-large ReLU net (std 1) still trains: Adam's step does not grow with the "
                        "gradient, and ReLU never saturates; the too-large tanh net saturates and learns slowly.")
