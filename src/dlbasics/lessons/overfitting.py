"""L3 Overfitting and underfitting: small and noisy training sets, weight decay, model width."""

from __future__ import annotations

from dlbasics.callbacks import RegressionFit
from dlbasics.callbacks.figures import fit_figure
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import overlay_curves, sweep_plot
from dlbasics.lessons.runner import Run, RunResult

WEIGHT_DECAYS = (0.0, 0.01, 0.1)
WIDTHS = (2, 8, 16, 32, 64)
# sine_overfit.yaml: 1 -> 12 -> 1 ReLU, Adam lr 0.05, 100 full-batch epochs, 20 points of sin x + 0.5 x (noise
# std 0.2); the 100 evaluation points (validation and test) are drawn the same way.
BASE = Run("train20_noise0.2", "sine_overfit.yaml", test=True)
NOISY = {wd: Run(f"noise1.0_wd{wd}", "sine_overfit.yaml",
                 ("--data.noise_std=1.0", f"--model.optimizer.weight_decay={wd}"), test=True)
         for wd in WEIGHT_DECAYS}
BY_WIDTH = {w: Run(f"width{w}", "sine_overfit.yaml", (f"--model.network.hidden_sizes=[{w}]",), test=True)
            for w in WIDTHS}
RUNS = (BASE, *NOISY.values(), *BY_WIDTH.values())


def fit_of(result: RunResult) -> RegressionFit:
    return result.callback(RegressionFit)


def gap(result: RunResult) -> float:
    """Test loss minus final train loss: how much worse the model does on unseen points."""
    return result.last("test/loss") - result.last("train/loss")


def run(ctx: LessonContext) -> None:
    report = ctx.report
    base = ctx.run(BASE, [RegressionFit()])
    ctx.figure(overlay_curves([base], ["train/loss", "val/loss"], "L3.a 20 training points vs 100 test points",
                              log_y=True, one_panel=True), "l3a_loss_curves")

    noisy = {wd: ctx.run(run, [RegressionFit()]) for wd, run in NOISY.items()}
    plain = noisy[0.0]
    ctx.figure(overlay_curves([plain], ["train/loss", "val/loss"], "L3.b training noise std 1.0", log_y=True,
                              one_panel=True), "l3b_noisy_loss_curves")
    ctx.figure(fit_figure(fit_of(plain).last, "L3.b fit to 20 points with noise std 1.0"), "l3b_noisy_fit")
    ctx.figure(overlay_curves(list(noisy.values()), ["val/loss"], "L3.c weight decay on the noisy set", log_y=True),
               "l3c_weight_decay")
    for result in (base, *noisy.values()):
        report.add("L3.a-c train vs test", result.name, train_loss=result.last("train/loss"),
                   test_loss=result.last("test/loss"), gap=gap(result), test_r2=result.last("test/r2"))

    widths = {w: ctx.run(run) for w, run in BY_WIDTH.items()}
    ctx.figure(sweep_plot(WIDTHS, {"test R^2": [r.last("test/r2") for r in widths.values()],
                                   "train R^2": [r.last("train/r2") for r in widths.values()]},
                          "L3.d model complexity", "hidden width", "R^2", log_x=True), "l3d_r2_vs_width")
    for width, result in widths.items():
        report.add("L3.d hidden width", f"width {width}", train_r2=result.last("train/r2"),
                   test_r2=result.last("test/r2"), test_loss=result.last("test/loss"))

    report.notes.append(
        "With training noise std 1.0 the training loss contains the noise variance (about 1.0) while the test "
        "points keep noise std 0.2, so test loss falls below training loss; the test loss (and R^2) is the "
        "measure of generalisation there: weight decay lowers it.")
    report.key.update({
        "train/test loss, 20 points noise 0.2": f"{base.last('train/loss'):.4f} / {base.last('test/loss'):.4f}",
        **{f"test loss, train noise 1.0, weight decay {wd}": r.last("test/loss") for wd, r in noisy.items()},
        **{f"test R^2, width {w}": r.last("test/r2") for w, r in widths.items()},
    })
