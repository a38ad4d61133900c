"""L6 MNIST with a shallow net: 784 -> 128 -> 10, test accuracy, confusion matrix, right and wrong digits."""

from __future__ import annotations

from dlbasics.callbacks import ConfusionMatrix, Misclassified
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import overlay_curves
from dlbasics.lessons.runner import Run

# With --fast: 2 epochs of a few batches each.
MNIST_FAST = ("--trainer.max_epochs=2", "--trainer.limit_train_batches=40", "--trainer.limit_val_batches=3")
# mnist_mlp.yaml: 784 -> 128 -> 10 ReLU, Adam lr 1e-3, batch 128, 5 epochs.
# One seed by default (a seed is a minute of training here); `dlbasics lesson mnist --seeds 5` gives the interval.
MLP = Run("mlp_784_128_10", "mnist_mlp.yaml", test=True, fast=MNIST_FAST, default_seeds=1)
RUNS = (MLP,)
CLAIMS = (Claim("L6", "the shallow net reaches at least 97% test accuracy (the lesson expects about 97-98%)",
                lambda r: r[MLP.name].last("test/acc"), runs=(MLP.name,), above=0.97),)


def per_class_accuracy(result) -> list[float]:  # noqa: ANN001 (a RunResult)
    matrix = result.callback(ConfusionMatrix).matrix
    return (matrix.diag() / matrix.sum(1).clamp(min=1)).tolist()


def run(ctx: LessonContext) -> None:
    report = ctx.report
    runs = ctx.run(MLP, [ConfusionMatrix(stage="test"), Misclassified(stage="test", n_wrong=8, n_right=8)])
    ctx.figure(overlay_curves([runs], ["train/loss", "val/loss", "val/acc"], "L6 MNIST 784-128-10"),
               "l6_curves")
    ctx.adopt(runs.first, "confusion_matrix", "l6_confusion_matrix")
    ctx.adopt(runs.first, "misclassified", "l6_right_and_wrong_digits")
    per_class = [per_class_accuracy(r) for r in runs.results]
    report.add("L6 test", MLP.name, test_acc=runs.last("test/acc"), test_loss=runs.last("test/loss"),
               val_acc=runs.last("val/acc"), seconds=runs.each(lambda r: r.seconds))
    report.add("L6 per-class test accuracy", MLP.name, **{f"digit {d}": [seed[d] for seed in per_class]
                                                          for d in range(10)})
    worst = per_class[0]
    report.add_key(**{"test accuracy (expected about 0.97-0.98)": runs.last("test/acc"),
                      "worst digit (first seed)": f"{min(range(10), key=worst.__getitem__)} ({min(worst):.3f})",
                      "training time (s)": runs.each(lambda r: r.seconds)})
