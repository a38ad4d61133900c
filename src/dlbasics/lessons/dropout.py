"""L4 Dropout and weight decay: DropNet on the quadratic task, and the notebook's moons variant."""

from __future__ import annotations

from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import overlay_curves, sweep_plot
from dlbasics.lessons.runner import Run, RunResult

RATES = (0.0, 0.3, 0.5, 0.7)
# toy2d_dropout.yaml: DropNet 2 -> 32 -> 32 -> 2 ReLU, dropout after each hidden layer, Adam lr 0.08, 80 full-batch
# epochs, on the quadratic task (N=200, the first 70% for training).
BY_RATE = {rate: Run(f"dropout_{rate}", "toy2d_dropout.yaml", (f"--model.network.dropout={rate}",))
           for rate in RATES}
WITH_WD = Run("dropout_0.5_wd_0.02", "toy2d_dropout.yaml", ("--model.optimizer.weight_decay=0.02",))
# The notebook's moons variant: both runs AdamW lr 3e-3, 25 epochs, batch 64, MLP 64-64 without batch norm;
# no separate validation split: validation runs on the stratified 25% test split each epoch, as in the notebook.
MOONS = [Run("moons_plain", "moons_dropout.yaml", ("--model.network.dropout=0.0", "--model.optimizer.weight_decay=0.0"),
             test=True),
         Run("moons_dropout_adamw", "moons_dropout.yaml", test=True)]
RUNS = (*BY_RATE.values(), WITH_WD, *MOONS)


def gap(result: RunResult) -> float:
    """Train minus validation accuracy, each averaged over the last 10 epochs."""
    return result.tail_mean("train/acc") - result.tail_mean("val/acc")


def run(ctx: LessonContext) -> None:
    report = ctx.report
    by_rate = {rate: ctx.run(run) for rate, run in BY_RATE.items()}
    with_wd = ctx.run(WITH_WD)
    plain, dropped = by_rate[0.0], by_rate[0.5]

    ctx.figure(overlay_curves([dropped], ["train/acc", "val/acc"], "L4.a DropNet, dropout 0.5", one_panel=True),
               "l4a_dropout")
    ctx.figure(overlay_curves([with_wd], ["train/acc", "val/acc"], "L4.b dropout 0.5 + weight decay 0.02",
                              one_panel=True), "l4b_dropout_weight_decay")
    trio = [plain, dropped, with_wd]
    ctx.figure(overlay_curves(trio, ["train/acc", "val/acc"], "L4.c none vs dropout vs dropout + weight decay"),
               "l4c_regularisation")
    for result in trio:
        report.add("L4.a-c regularisation (quadratic task)", result.name, train_acc=result.last("train/acc"),
                   val_acc=result.last("val/acc"), gap=gap(result), best_val_acc=max(result.curves["val/acc"]))

    rates = list(by_rate.values())
    ctx.figure(overlay_curves(rates, ["val/acc"], "L4.d validation accuracy by dropout rate"), "l4d_dropout_rates")
    ctx.figure(sweep_plot(RATES, {"val acc (mean of last 10 epochs)": [r.tail_mean("val/acc") for r in rates],
                                  "train acc (mean of last 10 epochs)": [r.tail_mean("train/acc") for r in rates]},
                          "L4.d accuracy vs dropout rate", "dropout rate", "accuracy"), "l4d_sweep")
    for rate, result in by_rate.items():
        report.add("L4.d dropout rate sweep", f"p={rate}", val_acc=result.last("val/acc"),
                   val_acc_last10=result.tail_mean("val/acc"), train_acc_last10=result.tail_mean("train/acc"))

    moons = [ctx.run(run) for run in MOONS]
    ctx.figure(overlay_curves(moons, ["val/loss", "val/acc"],
                              "L4 moons: plain vs dropout 0.2 + weight decay 1e-3, AdamW (val = the 25% test split)"),
               "l4_moons")
    for result in moons:
        report.add("L4 moons variant", result.name, test_loss=result.last("test/loss"),
                   test_acc=result.last("test/acc"), train_loss=result.last("train/loss"))

    report.key.update({f"val acc (last 10 epochs), dropout {rate}": by_rate[rate].tail_mean("val/acc")
                       for rate in RATES})
    report.key.update({"train-val gap, none": gap(plain), "train-val gap, dropout 0.5": gap(dropped),
                       "train-val gap, dropout 0.5 + wd 0.02": gap(with_wd)})
    if plain.tail_mean("val/acc") >= max(r.tail_mean("val/acc") for r in (*rates, with_wd)):
        report.notes.append(
            f"On this task the unregularised DropNet does not overfit (validation accuracy "
            f"{plain.tail_mean('val/acc'):.3f} over the last 10 epochs, gap {gap(plain):.3f}), so regularisation "
            "has no gap to close and costs accuracy; too much dropout (0.7) costs the most.")
    report.notes.append("Dropout makes the accuracy curves noisy; the sweep compares means over the last 10 "
                        "epochs. Train accuracy is measured with dropout active, as logged during training.")

