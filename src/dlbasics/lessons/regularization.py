"""L5 Regularization in the training loop: TinyNet on 30 noisy sine points, weight decay and dropout."""

from __future__ import annotations

from dlbasics.callbacks import RegressionFit
from dlbasics.lessons.claims import PUBLISHED, Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.fits import fits_figure, roughness
from dlbasics.lessons.plots import overlay_curves
from dlbasics.lessons.runner import Run, RunResult

# "Shows it": at SGD lr 0.01 for 500 epochs the plain TinyNet has not yet fitted the noise. Trained longer with a
# faster optimizer it does, and then the regularisers earn their keep.
CHASE = ("--model.optimizer=torch.optim.Adam", "--model.optimizer.lr=0.01")
SHOWS_IT = ("Adam lr 0.01 instead of SGD lr 0.01 (500 epochs as published): the net chases the noise only once the "
            "optimizer gets far enough to fit the training points, and only then does regularisation pay")
NOISE_VARIANCE = 0.09  # of the training targets (noise std 0.3)
CHASE_DECAY, CHASE_DROPOUT = 0.01, 0.3


def tinynet(name: str, weight_decay: float = 0.0, dropout: float = 0.0, depth: int = 2,
            budget: tuple[str, ...] = ()) -> Run:
    """sine_tinynet.yaml (TinyNet 1 -> 64 -> 64 -> 1 tanh, SGD lr 0.01, 500 full-batch epochs) with these settings.

    Trained on 30 evenly spaced points of sin x with noise std 0.3; tested on 100 noiseless points.
    """
    overrides = [*budget, f"--model.optimizer.weight_decay={weight_decay}", f"--model.network.dropout={dropout}"]
    if depth != 2:
        overrides.append(f"--model.network.hidden_sizes=[{', '.join(['64'] * depth)}]")
    return Run(name, "sine_tinynet.yaml", tuple(overrides), test=True)


MAIN = [tinynet("none"), tinynet("weight_decay_0.1", weight_decay=0.1), tinynet("dropout_0.3", dropout=0.3)]
DECAYS = {wd: tinynet(f"weight_decay_{wd}", weight_decay=wd) for wd in (0.001, 0.01, 1.0)}  # and 0.1 in MAIN
DEEPER = tinynet("deeper_4x64_dropout_0.3", dropout=0.3, depth=4)
BOTH = tinynet("weight_decay_0.01_dropout_0.3", weight_decay=0.01, dropout=0.3)
CHASING = [tinynet("chase_none", budget=CHASE),
           tinynet(f"chase_weight_decay_{CHASE_DECAY}", weight_decay=CHASE_DECAY, budget=CHASE),
           tinynet(f"chase_dropout_{CHASE_DROPOUT}", dropout=CHASE_DROPOUT, budget=CHASE)]
RUNS = (*MAIN, *DECAYS.values(), DEEPER, BOTH, *CHASING)


def test_error(result: RunResult) -> float:
    return result.last("test/loss")


def lower_test_mse(plain: Run, regularised: Run, what: str, setting: str) -> Claim:
    return Claim("L5", f"{what} gives a lower test MSE than the unregularised net, which chases the noise "
                 "(measure: plain minus regularised)",
                 lambda r: test_error(r[plain.name]) - test_error(r[regularised.name]),
                 runs=(plain.name, regularised.name), above=0.0, setting=setting)


def smoother(regularised: Run, what: str) -> Claim:
    return Claim("L5", f"regularised fits are smoother: the {what} fit bends less than the plain one (measure: its "
                 "roughness over the plain fit's)", lambda r: roughness(r[regularised.name]) / roughness(r[CHASING[0].name]),
                 runs=(CHASING[0].name, regularised.name), below=1.0, setting=SHOWS_IT)


CLAIMS = (
    lower_test_mse(MAIN[0], MAIN[1], "weight decay 0.1", PUBLISHED),
    lower_test_mse(MAIN[0], MAIN[2], "dropout 0.3", PUBLISHED),
    Claim("L5", f"the unregularised net chases the noise: its training MSE falls below the noise variance "
          f"({NOISE_VARIANCE:g})", lambda r: r[CHASING[0].name].evaluate("train")["loss"], runs=(CHASING[0].name,),
          below=NOISE_VARIANCE, setting=SHOWS_IT),
    lower_test_mse(CHASING[0], CHASING[1], f"weight decay {CHASE_DECAY}", SHOWS_IT),
    smoother(CHASING[1], f"weight decay {CHASE_DECAY}"),
    smoother(CHASING[2], f"dropout {CHASE_DROPOUT}"),
    Claim("L5.a", "very strong weight decay (1.0) underfits: its test MSE is above the unregularised net's "
          "(measure: its test MSE minus the plain one's)",
          lambda r: test_error(r["weight_decay_1.0"]) - test_error(r["none"]), runs=("weight_decay_1.0", "none"),
          above=0.0),
)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    # TensorBoard: each fit forming (first seed; about 10 figures, one PNG file)
    main = [ctx.run(run, [RegressionFit(figures_per_fit=10, pngs="last")]) for run in MAIN]
    ctx.figure(fits_figure(main, "L5 TinyNet fits: none, weight decay 0.1, dropout 0.3"), "l5_fits")
    ctx.figure(overlay_curves(main, ["train/loss", "val/loss"], "L5 loss curves (val: noiseless sin x)", log_y=True),
               "l5_loss_curves")
    chasing = [ctx.run(run) for run in CHASING]
    ctx.figure(fits_figure(chasing, "L5 shows it: Adam lr 0.01, 500 epochs (published: SGD lr 0.01)"),
               "l5_fits_shows_it")
    ctx.figure(overlay_curves(chasing, ["train/loss", "val/loss"], "L5 shows it: loss curves", log_y=True),
               "l5_loss_curves_shows_it")

    decays = [ctx.run(DECAYS[wd]) if wd in DECAYS else main[1] for wd in (0.001, 0.01, 0.1, 1.0)]
    ctx.figure(fits_figure(decays, "L5.a weight decay sweep"), "l5a_weight_decay_fits")
    deeper, both = ctx.run(DEEPER), ctx.run(BOTH)
    ctx.figure(fits_figure([main[0], deeper, both], "L5.b deeper net with dropout; L5.c weight decay + dropout"),
               "l5bc_fits")

    for seeds in (*main, *decays[:2], decays[3], deeper, both, *chasing):
        report.add("L5 variants", seeds.name, train_mse_eval=seeds.each(lambda r: r.evaluate("train")["loss"]),
                   test_mse=seeds.last("test/loss"), test_r2=seeds.last("test/r2"), roughness=seeds.each(roughness))
    report.add_key(**{f"test MSE (noiseless sin), {r.name}": r.last("test/loss") for r in (*main, decays[3],
                                                                                          *chasing)})
    report.notes.append("train_mse_eval is the trained model's MSE over the 30 training points in eval mode (the "
                        "noise variance is 0.09: a net far below it has fitted the noise); test_mse is measured on "
                        "100 noiseless points of sin x; roughness is the mean squared second difference of the "
                        "fitted curve on an even grid.")
