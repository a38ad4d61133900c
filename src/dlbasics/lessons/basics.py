"""L7 Basic deep learning: the moons MLP with its decision boundary, and the small CNN on MNIST."""

from __future__ import annotations

from dlbasics.callbacks import DecisionBoundary, FeatureMaps
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.mnist import MNIST_FAST
from dlbasics.lessons.plots import overlay_curves
from dlbasics.lessons.runner import Run

# moons_mlp.yaml: MLP 64-64 with batch norm and dropout 0.1 on make_moons(2000, noise 0.25), Adam lr 3e-3, weight
# decay 1e-4, batch 64, 40 epochs. No separate validation split: validation runs on the 25% stratified test split.
MOONS = Run("moons_mlp", "moons_mlp.yaml", test=True)
# mnist_cnn.yaml: the small CNN (conv 32, conv 64, fc 128, dropout 0.2), Adam lr 1e-3, batch 128, 5 epochs.
# One seed by default, as the MNIST lesson.
CNN = Run("mnist_cnn", "mnist_cnn.yaml", test=True, fast=MNIST_FAST, default_seeds=1)
RUNS = (MOONS, CNN)
# The moons MLP's config draws its training in TensorBoard (the boundary forming on the training points, its hidden
# units over the input plane; first seed); the lesson adds the boundary on the test set, under boundary/test.
MOONS_FIGURES = (DecisionBoundary(stage="test"),)
CLAIMS = (
    # The notebook's 94% is one data draw (seed 0 gives 0.948 here); across draws the 500 test points alone move the
    # accuracy by about 2 points (two standard errors of 0.011), so "about 94%" is read as at least 91%.
    Claim("L7", "the moons MLP reaches about the notebook's 94% test accuracy: at least 91% on every data draw",
          lambda r: r[MOONS.name].last("test/acc"), runs=(MOONS.name,), above=0.91),
    Claim("L7", "the small CNN reaches at least 98.5% MNIST test accuracy (the notebook expects about 99%)",
          lambda r: r[CNN.name].last("test/acc"), runs=(CNN.name,), above=0.985),
)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    mlp = ctx.run(MOONS, MOONS_FIGURES)
    ctx.figure(overlay_curves([mlp], ["train/loss", "val/loss", "val/acc"], "L7 moons MLP (val = the test split)"),
               "l7_moons_curves")
    ctx.adopt(mlp.first, "decision_boundary", "l7_moons_decision_boundary")

    cnn = ctx.run(CNN, [FeatureMaps(n_inputs=8)])
    ctx.figure(overlay_curves([cnn], ["train/loss", "val/loss", "val/acc"], "L7 MNIST small CNN"), "l7_cnn_curves")
    ctx.adopt(cnn.first, "feature_maps", "l7_cnn_feature_maps")

    for runs in (mlp, cnn):
        report.add("L7 test", runs.name, test_acc=runs.last("test/acc"), test_loss=runs.last("test/loss"),
                   train_acc=runs.last("train/acc"), seconds=runs.each(lambda r: r.seconds))
    report.add_key(**{"moons MLP test accuracy (expected about 0.94)": mlp.last("test/acc"),
                      "MNIST CNN test accuracy (expected about 0.99)": cnn.last("test/acc"),
                      "MNIST CNN training time (s)": cnn.each(lambda r: r.seconds)})
