"""L1 Activation functions: shapes and derivatives, training per activation, gradients, a mid-training swap."""

from __future__ import annotations

from statistics import fmean

from dlbasics.activation_plot import activation_functions_figure
from dlbasics.callbacks import ActivationStats, ActivationSwap, GradientFlowMonitor
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import lines_figure, overlay_curves
from dlbasics.lessons.runner import Run, RunResult

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
FIRST_LAYER = "network.layers.0"  # the first Linear of the MLP
PER_ACTIVATION = {act: Run(act, "tiny_activation.yaml", (f"--model.network.activation={act}",))
                  for act in ACTIVATIONS}
SWAP = Run("swap_tanh_to_relu", "activation_swap.yaml",
           fast=("--trainer.max_epochs=8", '--trainer.callbacks.schedule=[{at_epoch: 4, from_kind: tanh, to: relu}]'))
RUNS = (*PER_ACTIVATION.values(), SWAP)


def monitors(result: RunResult) -> tuple[GradientFlowMonitor, ActivationStats]:
    return result.callback(GradientFlowMonitor), result.callback(ActivationStats)


def unit_fraction(stats: ActivationStats, key: str) -> list[float]:
    """Per epoch, the hidden activation layer's fraction of dead (or saturated) units; [] if not defined."""
    values = []
    for entry in stats.history:
        (layer,) = entry["layers"].values()  # one hidden activation
        if key in layer:
            values.append(layer[key])
    return values


def run(ctx: LessonContext) -> None:
    report = ctx.report
    ctx.figure(activation_functions_figure(ACTIVATIONS, negative_slope=0.1), "l1a_activations_and_derivatives")

    runs = {act: ctx.run(run) for act, run in PER_ACTIVATION.items()}
    ctx.figure(overlay_curves(list(runs.values()), ["train/loss"], "L1.b loss per activation (same initial weights)"),
               "l1b_loss_curves")
    first_grads = {act: monitors(r)[0].series("mean_abs")[FIRST_LAYER] for act, r in runs.items()}
    ctx.figure(lines_figure({"first layer mean |grad|": first_grads}, "L1.c first-layer gradient per activation",
                            log_y=True), "l1c_first_layer_gradients")
    dead = {act: unit_fraction(monitors(r)[1], "dead_frac") for act, r in runs.items()}
    saturated = {act: unit_fraction(monitors(r)[1], "saturated_frac") for act, r in runs.items()}
    ctx.figure(lines_figure({"dead units (ReLU family)": {a: v for a, v in dead.items() if v},
                             "saturated outputs (sigmoid, tanh)": {a: v for a, v in saturated.items() if v}},
                            "L1 extension: dead and saturated units", ylabel="fraction"), "l1_dead_and_saturated")
    for act, result in runs.items():
        grads = first_grads[act]
        report.add("L1.b-c per activation", act, final_train_loss=result.last("train/loss"),
                   final_train_acc=result.last("train/acc"), first_layer_grad_epoch0=grads[0],
                   first_layer_grad_first10=fmean(grads[:10]),
                   first_layer_grad_mean=fmean(grads),
                   dead_frac=dead[act][-1] if dead[act] else "-",
                   saturated_frac=saturated[act][-1] if saturated[act] else "-")

    swapped = ctx.run(SWAP)
    (swap_epoch,) = [swap.at_epoch for swap in swapped.callback(ActivationSwap).schedule]
    loss = swapped.curves["train/loss"]
    ctx.figure(overlay_curves([swapped], ["train/loss"], f"L1.d tanh for {swap_epoch} epochs, then ReLU",
                              marks={swap_epoch: "tanh -> relu"}), "l1d_activation_swap")
    report.add("L1.d activation swap", "tanh -> relu", loss_before_swap=loss[swap_epoch - 1],
               loss_at_swap=loss[swap_epoch], final_loss=loss[-1])

    report.key.update({f"first-layer mean |grad| in epoch 0, {act}": first_grads[act][0] for act in ACTIVATIONS})
    report.notes.append("Gradients shrink for every activation as the loss falls, so the saturation effect shows "
                        "at the start (epoch 0 and the first 10 epochs): sigmoid's first-layer gradient is the "
                        "smallest there. Later the slower sigmoid net still has the larger loss, and gradients.")
    report.key.update({"loss before / at the swap": f"{loss[swap_epoch - 1]:.4f} / {loss[swap_epoch]:.4f}"})
