"""L6 MNIST with a shallow net: 784 -> 128 -> 10, test accuracy, confusion matrix, right and wrong digits."""

from __future__ import annotations

from functools import partial

import torch

from dlbasics.callbacks.confusion_matrix import ConfusionMatrix
from dlbasics.callbacks.misclassified import Misclassified
from dlbasics.data import MNISTDataModule
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import overlay_curves
from dlbasics.lessons.runner import Variant
from dlbasics.models import Classifier

TITLE = "L6 MNIST with a shallow net"


def mnist_budget(ctx: LessonContext) -> dict:
    """Trainer limits: the full data, or a few batches per epoch with ``fast``."""
    return {"limit_train_batches": 40, "limit_val_batches": 3} if ctx.fast else {}


def mlp_variant(ctx: LessonContext) -> Variant:
    """784 -> 128 -> 10 ReLU, Adam lr 1e-3, batch 128, 5 epochs; confusion matrix and digits on the test set."""
    data = MNISTDataModule(data_dir=ctx.data_dir, batch_size=128, seed=ctx.seed)
    return Variant("mlp_784_128_10", lambda: Classifier(input_shape=(1, 28, 28), num_outputs=10, hidden_sizes=[128],
                                                        optimizer=partial(torch.optim.Adam, lr=1e-3)),
                   data, ctx.epochs(5) if not ctx.fast else 2,
                   callbacks=[ConfusionMatrix(stage="test"), Misclassified(stage="test", n_wrong=8, n_right=8)],
                   test=True, trainer_kwargs=mnist_budget(ctx))


def run(ctx: LessonContext) -> None:
    report = ctx.report
    variant = mlp_variant(ctx)
    confusion = next(c for c in variant.callbacks if isinstance(c, ConfusionMatrix))
    result = ctx.run(variant)
    ctx.figure(overlay_curves([result], ["train/loss", "val/loss", "val/acc"], "L6 MNIST 784-128-10"),
               "l6_curves")
    ctx.adopt(result, "confusion_matrix", "l6_confusion_matrix")
    ctx.adopt(result, "misclassified", "l6_right_and_wrong_digits")
    matrix = confusion.matrix
    per_class = (matrix.diag() / matrix.sum(1).clamp(min=1)).tolist()
    report.add("L6 test", "mlp_784_128_10", test_acc=result.last("test/acc"), test_loss=result.last("test/loss"),
               val_acc=result.last("val/acc"), seconds=result.seconds)
    report.add("L6 per-class test accuracy", "mlp_784_128_10", **{f"digit {d}": a for d, a in enumerate(per_class)})
    report.key.update({"test accuracy (expected about 0.97-0.98)": result.last("test/acc"),
                       "worst digit": f"{min(range(10), key=per_class.__getitem__)} "
                                      f"({min(per_class):.3f})", "training time (s)": result.seconds})
