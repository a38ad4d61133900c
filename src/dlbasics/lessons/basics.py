"""L7 Basic deep learning: the moons MLP with its decision boundary, and the small CNN on MNIST."""

from __future__ import annotations

from functools import partial

import torch

from dlbasics.callbacks.decision_boundary import DecisionBoundary
from dlbasics.callbacks.feature_maps import FeatureMaps
from dlbasics.data import MNISTDataModule, MoonsDataModule
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.mnist import mnist_budget
from dlbasics.lessons.plots import overlay_curves
from dlbasics.lessons.runner import Variant
from dlbasics.models import Classifier

TITLE = "L7 Basic deep learning"


def moons_mlp_variant(ctx: LessonContext) -> Variant:
    """MLP 64-64 with batch norm and dropout 0.1 on make_moons(2000, noise 0.25), Adam lr 3e-3, wd 1e-4, batch 64.

    No separate validation split: validation runs on the 25% stratified test split each epoch, as in the notebook.
    """
    moons = MoonsDataModule(n_samples=2000, noise=0.25, test_fraction=0.25, batch_size=64, seed=ctx.seed)
    return Variant(
        "moons_mlp", lambda: Classifier(input_shape=(2,), num_outputs=2, hidden_sizes=[64, 64], batch_norm=True,
                                        dropout=0.1, optimizer=partial(torch.optim.Adam, lr=3e-3, weight_decay=1e-4)),
        moons, ctx.epochs(40), callbacks=[DecisionBoundary(every_n_epochs=5, stage="test")], test=True)


def mnist_cnn_variant(ctx: LessonContext) -> Variant:
    """The small CNN (conv 32, conv 64, fc 128, dropout 0.2) on MNIST, Adam lr 1e-3, batch 128, 5 epochs.

    Channels-last conv weights: the same network, about a sixth faster on CPU (``python -m benchmarks``).
    """
    mnist = MNISTDataModule(data_dir=ctx.data_dir, batch_size=128, seed=ctx.seed)
    return Variant(
        "mnist_cnn", lambda: Classifier(input_shape=(1, 28, 28), num_outputs=10, network="cnn", channels=[32, 64],
                                        hidden_sizes=[128], dropout=0.2, channels_last=True,
                                        optimizer=partial(torch.optim.Adam, lr=1e-3)),
        mnist, ctx.epochs(5) if not ctx.fast else 2, callbacks=[FeatureMaps(n_inputs=8)], test=True,
        trainer_kwargs=mnist_budget(ctx))


def run(ctx: LessonContext) -> None:
    report = ctx.report
    mlp = ctx.run(moons_mlp_variant(ctx))
    ctx.figure(overlay_curves([mlp], ["train/loss", "val/loss", "val/acc"], "L7 moons MLP (val = the test split)"),
               "l7_moons_curves")
    ctx.adopt(mlp, "decision_boundary", "l7_moons_decision_boundary")

    cnn = ctx.run(mnist_cnn_variant(ctx))
    ctx.figure(overlay_curves([cnn], ["train/loss", "val/loss", "val/acc"], "L7 MNIST small CNN"), "l7_cnn_curves")
    ctx.adopt(cnn, "feature_maps", "l7_cnn_feature_maps")

    for result in (mlp, cnn):
        report.add("L7 test", result.name, test_acc=result.last("test/acc"), test_loss=result.last("test/loss"),
                   train_acc=result.last("train/acc"), seconds=result.seconds)
    report.key.update({"moons MLP test accuracy (expected about 0.94)": mlp.last("test/acc"),
                       "MNIST CNN test accuracy (expected about 0.99)": cnn.last("test/acc"),
                       "MNIST CNN training time (s)": cnn.seconds})
