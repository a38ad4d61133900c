"""L1 Activation functions: shapes and derivatives, training per activation, gradients, a mid-training swap."""

from __future__ import annotations

from collections.abc import Mapping
from statistics import fmean, median

import torch

from dlbasics.activation_plot import activation_functions_figure
from dlbasics.callbacks import ActivationStats, ActivationSwap, GradientFlowMonitor, NeuronMaps
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure, overlay_curves
from dlbasics.lessons.runner import Run, RunResult, stack

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
FIRST_LAYER = "network.layers.0"  # the first Linear of the MLP
PER_ACTIVATION = {act: Run(act, "tiny_activation.yaml", (f"--model.network.activation={act}",))
                  for act in ACTIVATIONS}
SWAP = Run("swap_tanh_to_relu", "activation_swap.yaml",
           fast=("--trainer.max_epochs=8", '--trainer.callbacks.schedule=[{at_epoch: 4, from_kind: tanh, to: relu}]'))
# Extension, dead units: at the published lr 0.08 with 8 units about one unit in ten dies, for ReLU and LeakyReLU
# alike. Big Adam steps (lr 1.0) push many units to where they are negative on the whole data set; 64 units make
# the fraction a count worth reading. A ReLU unit there gets no gradient from any input; a LeakyReLU one still does.
DYING = ("--model.network.hidden_sizes=[64]", "--model.optimizer.lr=1.0")
DYING_SETTING = ("64 hidden units and Adam lr 1.0 instead of 8 and 0.08: units die from big steps, and 64 make the "
                 "fraction a count; LeakyReLU with slope 0.1 (with 0.01 it keeps fewer units alive: 4 of 5 seeds)")
DEAD_RELU = Run("dying_relu", "tiny_activation.yaml", ("--model.network.activation=relu", *DYING))
DEAD_LEAKY = Run("dying_leaky_relu_0.1", "tiny_activation.yaml",
                 ("--model.network.activation=leaky_relu", "--model.network.negative_slope=0.1", *DYING))
RUNS = (*PER_ACTIVATION.values(), SWAP, DEAD_RELU, DEAD_LEAKY)
# A TensorBoard slider (first seed, about 10 figures, one PNG file) of what each of the 8 hidden units computes over
# the input plane as it trains: zero beyond a line and a ramp before it (ReLU) against smooth steps (tanh). Two, not
# four: each figure costs about as much as a few epochs (this lesson took 1.2x its CPU time with these two, about 2x
# its wall time with boundary and unit sliders on all four; 2 cores, 5 seeds, 2026-12-02).
UNFOLD = {act: (NeuronMaps(figures_per_fit=10, pngs="last"),) for act in ("tanh", "relu")}


def first_layer_grads(result: RunResult) -> list[float]:
    """Mean |gradient| of the first layer's weights, per epoch."""
    return result.callback(GradientFlowMonitor).series("mean_abs")[FIRST_LAYER]


def early_grad(result: RunResult) -> float:
    """The first layer's mean |gradient| over the first 10 epochs, while the loss is still high."""
    return fmean(first_layer_grads(result)[:10])


def unit_fraction(result: RunResult, key: str) -> list[float]:
    """Per epoch, the hidden activation layer's fraction of dead, negative or saturated units; [] if not defined."""
    values = []
    for entry in result.callback(ActivationStats).history:
        (layer,) = entry["layers"].values()  # one hidden activation
        if key in layer:
            values.append(layer[key])
    return values


def swap_epoch(result: RunResult) -> int:
    (epoch,) = [swap.at_epoch for swap in result.callback(ActivationSwap).schedule]
    return epoch


def swap_jump(result: RunResult) -> float:
    """How the loss changes at the swap epoch, in units of its typical change per epoch over the 10 before."""
    loss, at = result.curves["train/loss"], swap_epoch(result)
    before = [abs(b - a) for a, b in zip(loss[max(0, at - 11):at - 1], loss[max(1, at - 10):at])]
    return abs(loss[at] - loss[at - 1]) / max(median(before), 1e-12)


def never_positive(result: RunResult) -> float:
    """Fraction of the trained net's hidden units whose pre-activation is <= 0 for every training input: dead for
    ReLU (no gradient from any input), merely negative for LeakyReLU (its gradient there is the slope)."""
    x, _ = result.data.split("train")
    first = result.model.get_submodule(FIRST_LAYER)
    with torch.no_grad():
        pre = first(x.to(result.model.device))  # (N, units)
    return float((pre <= 0).all(dim=0).double().mean())


def gradient_ratio(results: Mapping[str, RunResult]) -> float:
    return early_grad(results["sigmoid"]) / early_grad(results["relu"])


CLAIMS = (
    Claim("L1.c", "sigmoid saturates: its first layer's mean |grad| over the first 10 epochs is smaller than ReLU's "
          "(measure: sigmoid over ReLU)", gradient_ratio, runs=("sigmoid", "relu"), below=1.0),
    Claim("L1.d", "the swap shows in the loss curve: the loss changes at the swap epoch by over 3 times its "
          "typical change per epoch before it", lambda r: swap_jump(r[SWAP.name]), runs=(SWAP.name,), above=3.0),
    Claim("L1 ext", "ReLU units die in numbers: at the end over a fifth of the hidden units are negative for every "
          "training input", lambda r: never_positive(r[DEAD_RELU.name]), runs=(DEAD_RELU.name,), above=0.2,
          setting=DYING_SETTING),
    Claim("L1 ext", "LeakyReLU keeps them trainable: fewer of its units end negative on every input than ReLU's "
          "(measure: ReLU's fraction minus LeakyReLU's)",
          lambda r: never_positive(r[DEAD_RELU.name]) - never_positive(r[DEAD_LEAKY.name]),
          runs=(DEAD_RELU.name, DEAD_LEAKY.name), above=0.0, setting=DYING_SETTING),
)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    ctx.figure(activation_functions_figure(ACTIVATIONS, negative_slope=0.1), "l1a_activations_and_derivatives")

    runs = {act: ctx.run(run, UNFOLD.get(act, ())) for act, run in PER_ACTIVATION.items()}
    for act in UNFOLD:  # the last of each slider, in the lesson's figures
        ctx.adopt(runs[act].first, "neurons", f"l1b_{act}_hidden_units")
    ctx.figure(overlay_curves(list(runs.values()), ["train/loss"], "L1.b loss per activation (same initial weights)"),
               "l1b_loss_curves")
    first_grads = {act: stack([first_layer_grads(r) for r in seeds.results]) for act, seeds in runs.items()}
    ctx.figure(lines_figure({"first layer mean |grad|": first_grads}, "L1.c first-layer gradient per activation",
                            log_y=True), "l1c_first_layer_gradients")
    fractions = {kind: {act: stack([unit_fraction(r, kind) for r in seeds.results]) for act, seeds in runs.items()
                        if unit_fraction(seeds.first, kind)}
                 for kind in ("dead_frac", "negative_frac", "saturated_frac")}
    ctx.figure(lines_figure({"dead units (ReLU)": fractions["dead_frac"],
                             "never-positive units (LeakyReLU: not dead)": fractions["negative_frac"],
                             "saturated outputs (sigmoid, tanh)": fractions["saturated_frac"]},
                            "L1 extension: dead, negative and saturated units", ylabel="fraction"),
               "l1_dead_and_saturated")
    for act, seeds in runs.items():
        report.add("L1.b-c per activation", act, final_train_loss=seeds.last("train/loss"),
                   final_train_acc=seeds.last("train/acc"),
                   first_layer_grad_epoch0=seeds.each(lambda r: first_layer_grads(r)[0]),
                   first_layer_grad_first10=seeds.each(early_grad),
                   first_layer_grad_mean=seeds.each(lambda r: fmean(first_layer_grads(r))))
        for kind, by_act in fractions.items():
            if act in by_act:
                report.add("L1.b-c per activation", act, **{kind: [row[-1] for row in by_act[act]]})

    swapped = ctx.run(SWAP)
    at = swap_epoch(swapped.first)
    ctx.figure(overlay_curves([swapped], ["train/loss"], f"L1.d tanh for {at} epochs, then ReLU",
                              marks={at: "tanh -> relu"}), "l1d_activation_swap")
    report.add("L1.d activation swap", "tanh -> relu",
               loss_before_swap=swapped.each(lambda r: r.curves["train/loss"][at - 1]),
               loss_at_swap=swapped.each(lambda r: r.curves["train/loss"][at]),
               final_loss=swapped.last("train/loss"), jump_over_typical_change=swapped.each(swap_jump))
    dying = {DEAD_RELU.name: ctx.run(DEAD_RELU), DEAD_LEAKY.name: ctx.run(DEAD_LEAKY)}
    never = {name: stack([unit_fraction(r, "dead_frac") or unit_fraction(r, "negative_frac") for r in seeds.results])
             for name, seeds in dying.items()}
    ctx.figure(lines_figure({"units never positive in the epoch (ReLU: dead)": never,
                             "train/loss": {name: seeds.curves("train/loss") for name, seeds in dying.items()}},
                            "L1 extension shows it: 64 units, Adam lr 1.0", ylabel=""), "l1_dying_relu_shows_it")
    for name, seeds in dying.items():
        report.add("L1 extension: dying units (64 units, lr 1.0)", name, never_positive_end=seeds.each(never_positive),
                   final_train_loss=seeds.last("train/loss"))
    report.add_key(**{f"first-layer mean |grad|, first 10 epochs, {act}": runs[act].each(early_grad)
                      for act in ACTIVATIONS})
    report.notes.append("Gradients shrink for every activation as the loss falls, so the saturation effect shows "
                        "at the start (the first 10 epochs): sigmoid's first-layer gradient is the smallest there.")
