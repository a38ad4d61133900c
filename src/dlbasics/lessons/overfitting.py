"""L3 Overfitting and underfitting: small and noisy training sets, weight decay, model width."""

from __future__ import annotations

from dlbasics.callbacks import RegressionFit
from dlbasics.callbacks.figures import fit_figure
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.fits import fit_data
from dlbasics.lessons.plots import overlay_curves, sweep_plot
from dlbasics.lessons.runner import Run, RunResult

WEIGHT_DECAYS = (0.0, 0.01, 0.1)
WIDTHS = (2, 8, 16, 32, 64)
NOISY_DATA = "--data.noise_std=1.0"
# sine_overfit.yaml: 1 -> 12 -> 1 ReLU, Adam lr 0.05, 100 full-batch epochs, 20 points of sin x + 0.5 x (noise
# std 0.2); the 100 evaluation points (validation and test) are drawn the same way.
BASE = Run("train20_noise0.2", "sine_overfit.yaml", test=True)
NOISY = {wd: Run(f"noise1.0_wd{wd}", "sine_overfit.yaml", (NOISY_DATA, f"--model.optimizer.weight_decay={wd}"),
                 test=True) for wd in WEIGHT_DECAYS}
BY_WIDTH = {w: Run(f"width{w}", "sine_overfit.yaml", (f"--model.network.hidden_sizes=[{w}]",), test=True)
            for w in WIDTHS}
# "Shows it": the published 1-12-1 net in 100 epochs can't memorise 20 noisy points. A net with the capacity and
# the epochs to do it can; the rest of the settings stay.
MEMORISE = ("--model.network.hidden_sizes=[64, 64]", "--trainer.max_epochs=500")
MEMORISE_WD = 0.1
BIG = {wd: Run(f"noise1.0_64x64_500ep_wd{wd}", "sine_overfit.yaml",
               (NOISY_DATA, *MEMORISE, f"--model.optimizer.weight_decay={wd}"), test=True,
               fast=("--trainer.max_epochs=30",)) for wd in (0.0, MEMORISE_WD)}
RUNS = (BASE, *NOISY.values(), *BY_WIDTH.values(), *BIG.values())
# A TensorBoard slider (first seed) of the fit bending towards the points: about 10 figures per fit, one PNG file.
FIT = (RegressionFit(figures_per_fit=10, pngs="last"),)
NOISE_VARIANCE = 1.0  # of the noisy training targets
SHOWS_IT = ("1 -> 64 -> 64 -> 1 for 500 epochs instead of 1 -> 12 -> 1 for 100: a net fits the noise only with the "
            "capacity and the steps to memorise it (with either alone, Adam stops near the smooth fit)")


def train_mse(result: RunResult) -> float:
    """The trained model's MSE over the whole training split (eval mode)."""
    return result.evaluate("train")["loss"]


def memorised(run: Run) -> Claim:
    return Claim("L3.b", f"an unregularised net on noisy data fits the noise: its training MSE is below half the "
                 f"noise variance ({NOISE_VARIANCE:g})", lambda r: train_mse(r[run.name]), runs=(run.name,),
                 below=NOISE_VARIANCE / 2, setting=SHOWS_IT if run in BIG.values() else "published settings")


def decay_helps(plain: Run, decayed: Run, wd: float, setting: str) -> Claim:
    return Claim("L3.c", f"weight decay {wd:g} lowers the noisy net's test MSE (measure: test MSE without minus with)",
                 lambda r: r[plain.name].last("test/loss") - r[decayed.name].last("test/loss"),
                 runs=(plain.name, decayed.name), above=0.0, setting=setting)


CLAIMS = (
    Claim("L3.a", "with 20 training points the test MSE is above the training MSE (measure: test over train)",
          lambda r: r[BASE.name].last("test/loss") / train_mse(r[BASE.name]), runs=(BASE.name,), above=1.0),
    memorised(NOISY[0.0]),
    memorised(BIG[0.0]),
    Claim("L3.b", "the net that fits the noise does worse on unseen points: its test MSE is above its training MSE "
          "(measure: test minus train)",
          lambda r: r[BIG[0.0].name].last("test/loss") - train_mse(r[BIG[0.0].name]), runs=(BIG[0.0].name,),
          above=0.0, setting=SHOWS_IT),
    decay_helps(NOISY[0.0], NOISY[0.1], 0.1, "published settings"),
    decay_helps(BIG[0.0], BIG[MEMORISE_WD], MEMORISE_WD, SHOWS_IT),
    Claim("L3.d", "too small a model underfits: test R^2 of width 2 is below that of width 32 (measure: the "
          "difference)", lambda r: r["width32"].last("test/r2") - r["width2"].last("test/r2"),
          runs=("width2", "width32"), above=0.0),
)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    base = ctx.run(BASE, FIT)
    ctx.figure(overlay_curves([base], ["train/loss", "val/loss"], "L3.a 20 training points vs 100 test points",
                              log_y=True, one_panel=True), "l3a_loss_curves")

    noisy = {wd: ctx.run(run, FIT) for wd, run in NOISY.items()}
    big = {wd: ctx.run(run, FIT) for wd, run in BIG.items()}
    for plain, suffix, what in ((noisy[0.0], "", "published 1-12-1, 100 epochs"),
                                (big[0.0], "_shows_it", "shows it: 1-64-64-1, 500 epochs")):
        ctx.figure(overlay_curves([plain], ["train/loss", "val/loss"], f"L3.b training noise std 1.0 ({what})",
                                  log_y=True, one_panel=True), f"l3b_noisy_loss_curves{suffix}")
        # One seed's fit through its own points: what fitting the noise looks like (a mean over seeds would hide it).
        ctx.figure(fit_figure(fit_data(plain.first), f"L3.b fit to 20 points with noise std 1.0\n({what}; seed "
                                                     f"{plain.seeds[0]})"), f"l3b_noisy_fit{suffix}")
    ctx.figure(overlay_curves([*noisy.values(), *big.values()], ["val/loss"], "L3.c weight decay on the noisy set",
                              log_y=True), "l3c_weight_decay")
    for runs in (base, *noisy.values(), *big.values()):
        report.add("L3.a-c train vs test", runs.name, train_mse_eval=runs.each(train_mse),
                   test_loss=runs.last("test/loss"), test_r2=runs.last("test/r2"))

    widths = {w: ctx.run(run) for w, run in BY_WIDTH.items()}
    ctx.figure(sweep_plot(WIDTHS, {"test R^2": [r.last("test/r2") for r in widths.values()],
                                   "train R^2": [r.last("train/r2") for r in widths.values()]},
                          "L3.d model complexity", "hidden width", "R^2", log_x=True), "l3d_r2_vs_width")
    for width, runs in widths.items():
        report.add("L3.d hidden width", f"width {width}", train_r2=runs.last("train/r2"),
                   test_r2=runs.last("test/r2"), test_loss=runs.last("test/loss"))

    report.notes.append(
        "With training noise std 1.0 the training MSE of a net that does not memorise is about the noise variance "
        "(1.0), while the test points keep noise std 0.2; a net that fits the noise drives its training MSE far "
        "below 1.0 and its test MSE up. train_mse_eval is the trained model's MSE over the whole training split.")
    report.add_key(**{
        "train MSE, noise 1.0, published 1-12-1": noisy[0.0].each(train_mse),
        "train MSE, noise 1.0, 1-64-64-1 500 epochs": big[0.0].each(train_mse),
        **{f"test MSE, noise 1.0, weight decay {wd}": r.last("test/loss") for wd, r in noisy.items()},
        **{f"test R^2, width {w}": r.last("test/r2") for w, r in widths.items()},
    })
