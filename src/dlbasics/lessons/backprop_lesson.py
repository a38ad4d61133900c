"""L2 Backpropagation: chain rule by hand, gradient flow in a small MLP, vanishing gradients in a deep one."""

from __future__ import annotations

from functools import partial
from statistics import fmean as mean

import torch

from dlbasics.backprop import EXAMPLES, backprop, backprop_cli
from dlbasics.callbacks import GradientFlowMonitor
from dlbasics.data import Toy2DDataModule
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure
from dlbasics.lessons.runner import RunResult, Variant
from dlbasics.models import Classifier

TITLE = "L2 Backpropagation"


def by_hand_cli(argv: list[str]) -> int:
    """``dlbasics lesson backprop --x ... --w1 ... --w2 ... --y ...``: only the computation by hand."""
    return backprop_cli(argv)


def mlp_on_linear(ctx: LessonContext, name: str, hidden: list[int], activation: str, lr: float,
                  epochs: int) -> Variant:
    data = Toy2DDataModule(boundary="linear", n_samples=200, batch_size="full", seed=ctx.seed)
    return Variant(name, lambda: Classifier(input_shape=(2,), num_outputs=2, hidden_sizes=hidden,
                                            activation=activation, optimizer=partial(torch.optim.Adam, lr=lr)),
                   data, ctx.epochs(epochs), callbacks=[GradientFlowMonitor(plot_every_n_epochs=0)])


def layer_grads(result: RunResult) -> dict[str, list[float]]:
    """``{layer: mean |grad| per epoch}`` of every weight layer, in forward order."""
    (monitor,) = [c for c in result.callbacks if isinstance(c, GradientFlowMonitor)]
    return monitor.series("mean_abs")


def run(ctx: LessonContext) -> None:
    report = ctx.report
    tables = []
    for name, inputs in EXAMPLES.items():
        result = backprop(**inputs, name=name)
        tables.append(result.format_table())
        report.add("L2.a hand vs autograd", name, loss=float(result.steps["loss"]), max_abs_diff=result.max_abs_diff)
        report.key[f"L2.a max |hand - autograd|, {name}"] = result.max_abs_diff
    report.text = "\n\n".join(tables)

    small = ctx.run(mlp_on_linear(ctx, "relu_2_10_2", [10], "relu", lr=0.1, epochs=60))
    ctx.figure(lines_figure({"mean |grad| per layer": layer_grads(small)}, "L2.b gradient flow, 2 -> 10 -> 2 ReLU",
                            log_y=True), "l2b_gradient_flow")
    for layer, values in layer_grads(small).items():
        report.add("L2.b gradient flow (2-10-2 ReLU)", layer, mean_abs_grad=mean(values), last_epoch=values[-1])

    deep = {act: ctx.run(mlp_on_linear(ctx, f"deep_{act}", [32] * 6, act, lr=0.07, epochs=30))
            for act in ("sigmoid", "relu")}
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
