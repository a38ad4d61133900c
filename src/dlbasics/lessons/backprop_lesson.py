"""L2 Backpropagation: chain rule by hand, gradient flow in a small MLP, vanishing gradients in a deep one."""

from __future__ import annotations

import argparse
from statistics import fmean as mean

from dlbasics.backprop import EXAMPLES, add_arguments, backprop, by_hand
from dlbasics.callbacks import GradientFlowMonitor
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure
from dlbasics.lessons.runner import Run, RunResult

# L2.b reuses the L2.c config with the small net's settings: 2 -> 10 -> 2 ReLU, Adam lr 0.1, 60 epochs.
SMALL = Run("relu_2_10_2", "deep_sigmoid.yaml", ("--model.network.hidden_sizes=[10]",
                                                 "--model.network.activation=relu", "--model.optimizer.lr=0.1",
                                                 "--trainer.max_epochs=60"))
DEEP = {act: Run(f"deep_{act}", "deep_sigmoid.yaml", (f"--model.network.activation={act}",))
        for act in ("sigmoid", "relu")}
RUNS = (SMALL, *DEEP.values())

__all__ = ["RUNS", "add_arguments", "handle_arguments", "run"]  # add_arguments: the by-hand example's numbers


def handle_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int | None:
    """With the numbers of an example: print its computation by hand and return the exit status (no runs)."""
    return by_hand(args, parser, presets=False)


def layer_grads(result: RunResult) -> dict[str, list[float]]:
    """``{layer: mean |grad| per epoch}`` of every weight layer, in forward order."""
    return result.callback(GradientFlowMonitor).series("mean_abs")


def run(ctx: LessonContext) -> None:
    report = ctx.report
    tables = []
    for name, inputs in EXAMPLES.items():
        result = backprop(**inputs, name=name)
        tables.append(result.format_table())
        report.add("L2.a hand vs autograd", name, loss=float(result.steps["loss"]), max_abs_diff=result.max_abs_diff)
        report.key[f"L2.a max |hand - autograd|, {name}"] = result.max_abs_diff
    report.text = "\n\n".join(tables)

    small = ctx.run(SMALL)
    ctx.figure(lines_figure({"mean |grad| per layer": layer_grads(small)}, "L2.b gradient flow, 2 -> 10 -> 2 ReLU",
                            log_y=True), "l2b_gradient_flow")
    for layer, values in layer_grads(small).items():
        report.add("L2.b gradient flow (2-10-2 ReLU)", layer, mean_abs_grad=mean(values), last_epoch=values[-1])

    deep = {act: ctx.run(run) for act, run in DEEP.items()}
    hidden = {act: dict(list(layer_grads(r).items())[:-1]) for act, r in deep.items()}  # drop the output layer
    hidden_mean = {act: [mean(epoch) for epoch in zip(*layers.values())] for act, layers in hidden.items()}
    ctx.figure(lines_figure({"mean hidden-layer |grad|": hidden_mean, **{f"{act}: per layer": layers
                                                                        for act, layers in hidden.items()}},
                            "L2.c vanishing gradients: 6 hidden layers of 32", log_y=True), "l2c_vanishing_gradients")
    first_last = {}
    for act, layers in hidden.items():
        first, last = mean(next(iter(layers.values()))), mean(list(layers.values())[-1])
        first_last[act] = (first, last)
        report.add("L2.c deep net (epoch-mean |grad|)", act, first_hidden=first, last_hidden=last,
                   first_over_last=first / last, final_train_acc=deep[act].last("train/acc"))
    report.key["L2.c first/last hidden |grad|, sigmoid"] = first_last["sigmoid"][0] / first_last["sigmoid"][1]
    report.key["L2.c first/last hidden |grad|, relu"] = first_last["relu"][0] / first_last["relu"][1]
    report.key["L2.c first-layer |grad| sigmoid / relu"] = first_last["sigmoid"][0] / first_last["relu"][0]
