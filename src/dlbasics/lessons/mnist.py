"""L6 MNIST with a shallow net: 784 -> 128 -> 10, test accuracy, confusion matrix, right and wrong digits."""

from __future__ import annotations

from dlbasics.callbacks import ConfusionMatrix, Misclassified
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import overlay_curves
from dlbasics.lessons.runner import Run

# With --fast: 2 epochs of a few batches each.
MNIST_FAST = ("--trainer.max_epochs=2", "--trainer.limit_train_batches=40", "--trainer.limit_val_batches=3")
# mnist_mlp.yaml: 784 -> 128 -> 10 ReLU, Adam lr 1e-3, batch 128, 5 epochs.
MLP = Run("mlp_784_128_10", "mnist_mlp.yaml", test=True, fast=MNIST_FAST)
RUNS = (MLP,)


def run(ctx: LessonContext) -> None:
    report = ctx.report
    confusion = ConfusionMatrix(stage="test")
    result = ctx.run(MLP, [confusion, Misclassified(stage="test", n_wrong=8, n_right=8)])
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
