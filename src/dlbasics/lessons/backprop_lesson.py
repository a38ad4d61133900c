"""L2 Backpropagation: chain rule by hand, gradient flow in a small MLP, vanishing gradients in a deep one, and
numerical gradients (L2.d, in ``numerical_gradients``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from statistics import fmean as mean

from torch import nn

from dlbasics.backprop import EXAMPLES, add_arguments, backprop, by_hand
from dlbasics.callbacks import DecisionBoundary, GradientFlowMonitor, WeightHistograms
from dlbasics.lessons import numerical_gradients
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure
from dlbasics.lessons.runner import Run, RunResult, stack

# L2.b reuses the L2.c config with the small net's settings: 2 -> 10 -> 2 ReLU, Adam lr 0.1, 60 epochs.
SMALL = Run("relu_2_10_2", "deep_sigmoid.yaml", ("--model.network.hidden_sizes=[10]",
                                                 "--model.network.activation=relu", "--model.optimizer.lr=0.1",
                                                 "--trainer.max_epochs=60"))
DEEP = {act: Run(f"deep_{act}", "deep_sigmoid.yaml", (f"--model.network.activation={act}",))
        for act in ("sigmoid", "relu")}
RUNS = (SMALL, *DEEP.values())

__all__ = ["CLAIMS", "RUNS", "add_arguments", "handle_arguments", "run"]  # add_arguments: the example's numbers


def handle_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int | None:
    """With the numbers of an example: print its computation by hand and return the exit status (no runs)."""
    return by_hand(args, parser, presets=False)


def layer_grads(result: RunResult) -> dict[str, list[float]]:
    """``{layer: mean |grad| per epoch}`` of every weight layer, in forward order."""
    return result.callback(GradientFlowMonitor).series("mean_abs")


def hidden_grads(result: RunResult) -> dict[str, list[float]]:
    """``{hidden Linear layer: mean |grad| per epoch}``, in forward order: the layers whose module is an
    ``nn.Linear``, but the output one (a BatchNorm or LayerNorm ``weight`` is not a hidden layer)."""
    modules = dict(result.model.named_modules())
    linear = [(name, grads) for name, grads in layer_grads(result).items() if isinstance(modules.get(name), nn.Linear)]
    return dict(linear[:-1])


def first_hidden(result: RunResult) -> float:
    """The first hidden layer's mean |grad|, averaged over the epochs."""
    return mean(next(iter(hidden_grads(result).values())))


def first_over_last(result: RunResult) -> float:
    """First over last hidden layer's epoch-mean |grad|: far below 1 when gradients vanish on the way back."""
    layers = list(hidden_grads(result).values())
    return mean(layers[0]) / mean(layers[-1])


def hand_vs_autograd(results: Mapping[str, RunResult]) -> float:
    """The largest |hand - autograd| difference over both examples' chain-rule factors (no run needed)."""
    return max(backprop(**inputs, name=name).max_abs_diff for name, inputs in EXAMPLES.items())


DEEP_RUNS = tuple(r.name for r in DEEP.values())
CLAIMS = (
    Claim("L2.a", "the hand-computed chain-rule gradients agree with autograd's to float precision (below 1e-6)",
          hand_vs_autograd, runs=(), below=1e-6),
    Claim("L2.c", "in the deep sigmoid net the first hidden layer's gradient is below a tenth of the ReLU net's",
          lambda r: first_hidden(r["deep_sigmoid"]) / first_hidden(r["deep_relu"]), runs=DEEP_RUNS, below=0.1),
    Claim("L2.c", "in the deep sigmoid net the first hidden layer's gradient is below a tenth of its last's",
          lambda r: first_over_last(r["deep_sigmoid"]), runs=("deep_sigmoid",), below=0.1),
    # L2.d trains nothing: numerical_gradients.run records each seed's checks in ctx.by_seed, under its NAME (not
    # a Lightning run, hence runs=()), at the seeds of the lesson's runs.
    Claim("L2.d", "at the best step h, central differences agree with autograd within 1e-6 in float64 "
          f"({numerical_gradients.MLP_LABEL}, each seed's own weights and points)",
          numerical_gradients.best_float64_error, runs=(), below=1e-6),
    Claim("L2.d", "the float32 error curve has its minimum at a larger step h than the float64 curve "
          "(measure: decades between the two minima)", numerical_gradients.best_h_decades, runs=(), above=0.0),
)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    tables = []
    for name, inputs in EXAMPLES.items():
        result = backprop(**inputs, name=name)
        tables.append(result.format_table())
        report.add("L2.a hand vs autograd", name, loss=float(result.steps["loss"]), max_abs_diff=result.max_abs_diff)
    report.text = "\n\n".join(tables)

    # TensorBoard: its boundary forming on the training points (first seed; about 10 figures, one PNG file)
    small = ctx.run(SMALL, [DecisionBoundary(stage="train", figures_per_fit=10, pngs="last", resolution=100)])
    per_layer = {layer: stack([layer_grads(r)[layer] for r in small.results]) for layer in layer_grads(small.first)}
    legend = small.first.callback(GradientFlowMonitor).labelled(per_layer)  # linear1 (network.layers.0), ...
    ctx.figure(lines_figure({"mean |grad| per layer": legend}, "L2.b gradient flow, 2 -> 10 -> 2 ReLU", log_y=True),
               "l2b_gradient_flow")
    for layer, curves in per_layer.items():  # (seeds, epochs)
        report.add("L2.b gradient flow (2-10-2 ReLU)", layer, mean_abs_grad=[mean(row) for row in curves],
                   last_epoch=[row[-1] for row in curves])

    # TensorBoard histograms of each layer's weights and gradients, every 3rd of the 30 epochs and at the start.
    deep = {act: ctx.run(run, [WeightHistograms(every_n_epochs=3, bins=30)]) for act, run in DEEP.items()}
    hidden_mean = {act: stack([[mean(epoch) for epoch in zip(*hidden_grads(r).values())] for r in seeds.results])
                   for act, seeds in deep.items()}
    per_layer = {f"{act}: per layer (seed {seeds.seeds[0]})":
                 seeds.first.callback(GradientFlowMonitor).labelled(hidden_grads(seeds.first))
                 for act, seeds in deep.items()}
    ctx.figure(lines_figure({"mean hidden-layer |grad|": hidden_mean, **per_layer},
                            "L2.c vanishing gradients: 6 hidden layers of 32", log_y=True), "l2c_vanishing_gradients")
    for act, seeds in deep.items():
        report.add("L2.c deep net (epoch-mean |grad|)", act, first_hidden=seeds.each(first_hidden),
                   last_hidden=seeds.each(lambda r: mean(list(hidden_grads(r).values())[-1])),
                   first_over_last=seeds.each(first_over_last), final_train_acc=seeds.last("train/acc"))
    report.add_key(**{"L2.a max |hand - autograd|": hand_vs_autograd({}),
                      "L2.c first-layer |grad| sigmoid / relu": [first_hidden(s) / first_hidden(r) for s, r in
                                                                 zip(deep["sigmoid"].results, deep["relu"].results)],
                      "L2.c first/last hidden |grad|, sigmoid": deep["sigmoid"].each(first_over_last),
                      "L2.c first/last hidden |grad|, relu": deep["relu"].each(first_over_last)})
    numerical_gradients.run(ctx, small.seeds)
