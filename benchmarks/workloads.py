"""The workloads: for each, the sides to time, how often, and the comparisons (with targets) to report.

Raw sides read their budget (epochs, batch sizes, batch limits, whether it tests) from the lesson's own ``Run``,
built once by ``build_run`` (a ``Reference``), so both sides do the same number of steps by construction; the
networks and optimizers are written out by hand.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from lightning.pytorch import Callback
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import (ActivationStats, ConfusionMatrix, DecisionBoundary, FeatureMaps, GradientFlowMonitor,
                                Misclassified, RegressionFit)
from dlbasics.lessons.basics import CNN, MOONS
from dlbasics.lessons.dropout import BY_RATE
from dlbasics.lessons.mnist import MLP
from dlbasics.lessons.regularization import MAIN
from dlbasics.lessons.runner import Run

from benchmarks import raw_loops
from benchmarks.bare_lightning import bare_side
from benchmarks.flops import MATMUL_SIDE, matmul_side, rate_notes
from benchmarks.lesson_runs import ROOT, Reference, Settings, lesson_side, one_epoch, reference, validation_split
from benchmarks.raw_loops import Stage, TensorBatches, mnist_pixels, train_and_evaluate
from benchmarks.report import Row
from benchmarks.timing import Side, Timings

LESSONS_ALL_TARGET_S = 300.0
PRECISIONS = ("32-true", "bf16-mixed")
TINYNET = MAIN[0]  # tinynet("none")
DROPNET = BY_RATE[0.5]
# The figure callbacks the lessons pass to ``ctx.run`` with these runs (lessons/*.py), made fresh for each run.
FIGURES: dict[str, Callable[[], list[Callback]]] = {
    "tinynet": lambda: [RegressionFit(every_n_epochs=100)],
    "moons": lambda: [DecisionBoundary(every_n_epochs=5, stage="test")],
    "mnist_mlp": lambda: [ConfusionMatrix(stage="test"), Misclassified(stage="test", n_wrong=8, n_right=8)],
    "mnist_cnn": lambda: [FeatureMaps(n_inputs=8)],
}


@dataclass
class Target:
    text: str
    check: Callable[[float], bool]


def at_least(x: float) -> Target:
    return Target(f"≥ {x:g}", lambda ratio: ratio >= x)


def at_most(x: float) -> Target:
    return Target(f"≤ {x:g}", lambda ratio: ratio <= x)


@dataclass
class Comparison:
    """A table row: ``ratio`` is ``"dlbasics/baseline"`` or ``"baseline/dlbasics"``, the median of the ratios of
    each round's two runs (``Timings.paired_ratio``).

    With no ``baseline`` side the ratio is the dlbasics median over ``reference_s``.
    """

    baseline: str | None
    ratio: str = "dlbasics/baseline"
    target: Target | None = None
    dlbasics: str = "dlbasics"
    reference_s: float | None = None

    def sides(self) -> tuple[str, str]:
        """(numerator, denominator) of the ratio."""
        assert self.baseline is not None
        if self.ratio == "dlbasics/baseline":
            return self.dlbasics, self.baseline
        return self.baseline, self.dlbasics

    def row(self, workload: str, timings: Timings) -> Row:
        ours = timings.median(self.dlbasics)
        if self.baseline is None:
            value, theirs, label, name = ours / self.reference_s, None, f"{self.dlbasics}/{self.reference_s:g} s", "—"
        else:
            theirs = timings.median(self.baseline)
            value = timings.paired_ratio(*self.sides())
            label, name = "/".join(self.sides()), self.baseline
        met = "—" if self.target is None else ("yes" if self.target.check(value) else "no")
        if any(result.get("returncode") for result in timings.results.values()):
            met = "failed"  # a command that failed has no meaningful time
        return Row(workload, name, theirs, self.dlbasics, ours, f"{value:.2f} ({label})",
                   self.target.text if self.target else "—", met)

    def round_note(self, timings: Timings) -> str | None:
        """Each round's ratio, for a reader to see what the median stands for (None without a baseline)."""
        if self.baseline is None or len(timings.seconds[self.dlbasics]) < 2:
            return None
        ratios = ", ".join(f"{ratio:.2f}" for ratio in timings.round_ratios(*self.sides()))
        return f"per-round {'/'.join(self.sides())}: {ratios}"


@dataclass
class Workload:
    """A named workload: ``sides(settings)`` builds the sides (untimed); ``extra`` adds notes from the timings.

    ``gap``: for a target that is not met, what the profile showed and what would close the gap; written under
    the workload only when one of its targets is missed.
    """

    name: str
    title: str
    sides: Callable[[Settings], dict[str, Side]]
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)
    gap: list[str] = field(default_factory=list)
    max_repeats: int | None = None
    extra: Callable[[Timings], list[str]] | None = None


def raw_side(make_net: Callable[[], torch.nn.Module], optimizer: Callable, loss_fn: Callable, epochs: int,
             stages: tuple[Stage, Stage | None, Stage | None], to_input: Callable | None = None) -> Side:
    """A raw loop as a side: nothing to prepare; the timed call builds the net and trains it."""
    def call() -> dict[str, Any]:
        net = make_net()
        return train_and_evaluate(net, optimizer(net.parameters()), loss_fn, epochs, *stages, to_input=to_input)
    return lambda: call


def tensor_stages(ref: Reference) -> tuple[Stage, Stage, Stage | None]:
    """Train/val/test batches sliced from the run's own split tensors, with its batch sizes and limits."""
    data, limits = ref.data, ref.limits
    batch = None if data.batch_size == "full" else data.batch_size
    eval_batch = data.eval_batch_size or data.batch_size
    eval_batch = None if eval_batch == "full" else eval_batch
    return (Stage(TensorBatches(*data.split("train"), batch, shuffle=batch is not None),
                  limits.get("limit_train_batches")),
            Stage(TensorBatches(*data.split(validation_split(data)), eval_batch), limits.get("limit_val_batches")),
            Stage(TensorBatches(*data.split("test"), eval_batch), limits.get("limit_test_batches")) if ref.test
            else None)


def tinynet_sides(settings: Settings) -> dict[str, Side]:
    ref = reference(settings, TINYNET)
    sgd = partial(torch.optim.SGD, lr=0.01)
    return {"raw tensors": raw_side(raw_loops.tinynet, sgd, F.mse_loss, ref.max_epochs, tensor_stages(ref)),
            "bare Lightning": bare_side(raw_loops.tinynet, sgd, F.mse_loss, ref),
            "dlbasics": lesson_side(settings, "regularization", ref, FIGURES["tinynet"])}


def dropnet_sides(settings: Settings) -> dict[str, Side]:
    ref = reference(settings, DROPNET)
    net, adam = partial(raw_loops.dropnet, 0.5), partial(torch.optim.Adam, lr=0.08)
    return {"raw tensors": raw_side(net, adam, F.cross_entropy, ref.max_epochs, tensor_stages(ref)),
            "bare Lightning": bare_side(net, adam, F.cross_entropy, ref),
            "dlbasics": lesson_side(settings, "dropout", ref)}


def moons_sides(settings: Settings) -> dict[str, Side]:
    ref = reference(settings, MOONS)
    adam = partial(torch.optim.Adam, lr=3e-3, weight_decay=1e-4)
    (x, y), (x_test, y_test) = ref.data.split("train"), ref.data.split("test")
    test_loader = Stage(DataLoader(TensorDataset(x_test, y_test), batch_size=64))
    loaders = (Stage(DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)), test_loader, test_loader)
    return {"raw tensors": raw_side(raw_loops.moons_mlp, adam, F.cross_entropy, ref.max_epochs, tensor_stages(ref)),
            "bare Lightning": bare_side(raw_loops.moons_mlp, adam, F.cross_entropy, ref),
            "dlbasics": lesson_side(settings, "basics", ref, FIGURES["moons"]),
            "lesson DataLoader": raw_side(raw_loops.moons_mlp, adam, F.cross_entropy, ref.max_epochs, loaders)}


def torchvision_stages(settings: Settings, ref: Reference) -> tuple[Stage, None, Stage]:
    """The notebooks' loaders: torchvision MNIST (PIL -> ToTensor -> Normalize per sample), 60,000 train, 10,000 test.

    The datasets are built here, untimed, from the files the reference's ``prepare_data`` put on disk.
    """
    from torchvision import datasets, transforms  # only this baseline needs torchvision's datasets

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(root=settings.data_dir, train=True, transform=transform, download=False)
    test = datasets.MNIST(root=settings.data_dir, train=False, transform=transform, download=False)
    return (Stage(DataLoader(train, batch_size=128, shuffle=True), ref.limits.get("limit_train_batches")),
            None, Stage(DataLoader(test, batch_size=1000), ref.limits.get("limit_test_batches")))


def mnist_sides(settings: Settings, lesson: str, run: Run, make_net: Callable,
                figures: Callable[[], list[Callback]], bare: bool = False) -> dict[str, Side]:
    """The raw loop, the lesson run and the notebook's torchvision loop; with ``bare``, bare Lightning too (it trains
    on the lesson's datamodule, whose batch hook turns the uint8 digits into standardised floats)."""
    ref = reference(settings, one_epoch(run))
    adam = partial(torch.optim.Adam, lr=1e-3)
    sides = {"raw tensors": raw_side(make_net, adam, F.cross_entropy, 1, tensor_stages(ref), to_input=mnist_pixels),
             "dlbasics": lesson_side(settings, lesson, ref, figures),
             "torchvision loop": raw_side(make_net, adam, F.cross_entropy, 1, torchvision_stages(settings, ref))}
    return {**sides, "bare Lightning": bare_side(make_net, adam, F.cross_entropy, ref)} if bare else sides


def at_precision(run: Run, precision: str) -> Run:
    """The run trained at ``precision`` (``32-true``, ``bf16-mixed``) in place of its config's choice (the CNN's
    ``BF16WhereNative``)."""
    return dataclasses.replace(run, overrides=(*run.overrides, "--trainer.plugins=null",
                                               f"--trainer.precision={precision}"))


def cnn_sides(settings: Settings) -> dict[str, Side]:
    """The MNIST sides for the small CNN, plus the matmul rate measured between them. All in fp32, as the raw loops
    are: a CPU with native bf16 would otherwise flatter the dlbasics side (the ``precision`` workload has that)."""
    sides = mnist_sides(settings, "basics", at_precision(CNN, "32-true"), raw_loops.small_cnn, FIGURES["mnist_cnn"])
    return {**sides, MATMUL_SIDE: matmul_side()}


def callbacks_sides(settings: Settings) -> dict[str, Side]:
    ref = reference(settings, one_epoch(CNN))
    figures = FIGURES["mnist_cnn"]
    return {"without callbacks": lesson_side(settings, "basics", ref, figures),
            "with callbacks": lesson_side(settings, "basics", ref,
                                          lambda: [*figures(), GradientFlowMonitor(), ActivationStats()])}


def precision_sides(settings: Settings) -> dict[str, Side]:
    """One MNIST CNN lesson epoch in fp32 and in bf16 autocast, each with its test accuracy."""
    ref = reference(settings, one_epoch(CNN))
    return {name: lesson_side(settings, "basics", dataclasses.replace(ref, run=at_precision(ref.run, name)),
                              FIGURES["mnist_cnn"]) for name in PRECISIONS}


def lessons_all_sides(settings: Settings) -> dict[str, Side]:
    def call() -> dict[str, Any]:
        command = [sys.executable, "-m", "dlbasics", "lesson", "all", "--out", str(settings.out / "lesson_all")]
        done = subprocess.run(command + (["--fast"] if settings.quick else []), cwd=ROOT, capture_output=True,
                              text=True)
        if done.returncode:
            print(f"dlbasics lesson all failed ({done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"returncode": done.returncode}
    return {"dlbasics lesson all": lambda: call}


# Since the lessons became configs + overrides, a lesson run builds its model, datamodule and trainer through the
# LightningCLI parser inside ``ctx.run``; the dlbasics side times that too, as it is what a lesson run costs.
LESSON_NOTE = ("dlbasics: the lesson's `Run` fitted (and tested) by `LessonContext.run` with the figure callbacks "
               "the lesson passes it, as `dlbasics lesson` runs it; timed from parsing the config through building "
               "model, datamodule and trainer, making or loading the data, to the end of the test.")
MNIST_NOTES = [
    f"{LESSON_NOTE} The MNIST files are on disk before timing (`prepare_data` ran once, untimed); reading and "
    "checking them is timed.",
    "dlbasics: the lesson's run with `--trainer.max_epochs=1`: trains on the 55,000-image train split (batch 128), "
    "Lightning's 2-batch sanity check, validation on the 5,000-image val split (batch 1000), test on the 10,000 "
    "test images, the lesson's figure callbacks and TensorBoard logging.",
    "raw tensors: the same splits and batch sizes as uint8 tensors in memory (loaded before timing), normalised "
    "per batch; train, val, test.",
    "torchvision loop: the notebook's torchvision MNIST + ToTensor + Normalize, DataLoader batch 128 shuffled over "
    "all 60,000 training images (5,000 more than dlbasics trains on), then the 10,000 test images in batches of "
    "1000; no separate validation. Dataset objects are built before timing.",
]
TINY_GAP = [
    "Lightning's own floor is the 'bare Lightning/raw tensors' row: a LightningModule that logs nothing, with no "
    "callbacks or logger, already costs that multiple of the raw loop, because each full-batch epoch is one "
    "training and one validation step and Lightning's fixed cost per epoch (loops, hook dispatch over every "
    "callback, the optimizer closure, entering and leaving validation, `inspect.signature` on the step methods "
    "per batch) is larger than the maths. 3x cannot be met by code on top of Lightning.",
    "The 'dlbasics/bare Lightning' row is what the lesson adds: per epoch, four `self.log` calls of torchmetrics "
    "objects (train and val loss and R^2 or accuracy: update, compute, reset), Lightning's result collection "
    "and TensorBoard writes, the lesson's MetricHistory, and the figure callback. cProfile of the L5 run: "
    "Lightning's per-`self.log` device move was the largest single item (23%); `FastLogging` (the lessons use "
    "it) skips it, 3.9 s -> 2.9 s. Figure callbacks now gather their points only in epochs that draw.",
    "What would close it: fewer Lightning calls per epoch. Upstream: a cheaper `_ResultCollection.log` and "
    "cached hook signatures (Lightning has closed per-call overhead on tiny models as won't-fix, "
    "Lightning-AI/pytorch-lightning#6196, #8857). Here: a Fabric loop for full-batch lessons, which the lessons "
    "issue rules out (lessons are real Lightning fits with the project's systems and callbacks).",
]
MOONS_GAP = [
    "Issue 16 asks the run to be faster than the notebook's DataLoader loop. That loop is itself only the 'lesson "
    "DataLoader/raw tensors' multiple slower than the raw-tensor loop (a TensorDataset of 1500 two-feature points "
    "collates quickly), while bare Lightning, which logs nothing, is already the 'bare Lightning/raw tensors' "
    "multiple: Lightning's fixed cost per step (about 1 ms, 24 steps an epoch) exceeds the DataLoader's, so no "
    "Lightning run of these steps can beat that loop. dlbasics vs bare Lightning ('dlbasics/bare Lightning') is "
    "the cost of logging loss and accuracy per step and the decision-boundary figure.",
]
MLP_GAP = [
    "cProfile of the lesson run (RESULTS.md, 'Where the MNIST MLP epoch goes'): the confusion-matrix and "
    "misclassified-digits figures drawn after the test are about a third of it (matplotlib draws each in about "
    "0.33 s; the confusion matrix's 100 cell labels are most of that), and reading and checking the MNIST files "
    "(their MD5s) about 0.25 s. What would close it: a confusion matrix drawn with fewer artists, and a "
    "size-and-mtime stamp instead of hashing the files on every run.",
]
CNN_GAP = [
    "torch.profiler, one training step of batch 128 on 2 cores: the convolutions run at about half the matmul "
    "rate (forward 5 ms, backward 11 ms per conv call); max-pool, ReLU and their backward passes are "
    "memory-bound and pull the whole step down. channels_last (the lesson's `channels_last=True`, "
    "`System(channels_last=...)`) makes pooling about 6x faster and the epoch about 17% faster. torch.compile "
    "(inductor, CPU) was 2x slower (121 vs 60 ms per step) and is not used; torch keeps its default of one "
    "thread per core. Beyond that: a fused conv+ReLU+pool kernel (oneDNN post-ops), or bfloat16 on a CPU with "
    "AMX; neither is available to a plain PyTorch model on this machine.",
]
CALLBACKS_GAP = [
    "Timed per callback method in a one-epoch run: GradientFlowMonitor's per-step norms (1.3 ms a step, "
    "memory-bound: three norms of the 401k-value fc1 gradient; foreach kernels measured no faster), the "
    "figures drawn at the end of training (gradient flow, its heatmap, activations over time: about 1 s, a "
    "fixed cost that a one-epoch run does not amortise), and ActivationStats on one batch in ten. Already cut: "
    "ActivationStats' moments (two-pass, 3x faster than var_mean) and histograms (at most `hist_max_values` "
    "values a batch; torch.histc is 28 ms for the first conv's 3.2M values): 2.7 s -> 0.6 s; tight layout for "
    "these figures (0.67 -> 0.38 s for the activations figure). Closing the rest: draw figures only every few "
    "epochs (`plot_every_n_epochs`), sample fewer batches (`every_n_batches`).",
]
# Lightning's floor (bare Lightning / raw loop) and what dlbasics adds on top of it (dlbasics / bare Lightning).
# Issue 16's target 1: dlbasics at most 1.5x bare Lightning on every small workload.
FLOOR = [Comparison("raw tensors", dlbasics="bare Lightning"), Comparison("bare Lightning", target=at_most(1.5))]
WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("tinynet", "L5 TinyNet sine", tinynet_sides,
             [Comparison("raw tensors", target=at_most(3)), *FLOOR], [
        "Both: 500 full-batch SGD epochs (fast: 50), MSE; validation each epoch on 100 noiseless points (the "
        "SineDataModule's val split, identical to its test split), test once at the end.",
        f"{LESSON_NOTE} It also draws the RegressionFit figure and logs to TensorBoard.",
        "bare Lightning: the raw loop's network, loss and optimizer in a LightningModule that logs nothing, on the "
        "same datamodule, with no callbacks, logger or checkpointing (benchmarks/bare_lightning.py)."],
             gap=TINY_GAP),
    Workload("dropnet", "L4 DropNet quadratic", dropnet_sides,
             [Comparison("raw tensors", target=at_most(3)), *FLOOR], [
        "Both: 80 full-batch Adam epochs (fast: 8), dropout 0.5; validation loss and accuracy each epoch; no test.",
        f"{LESSON_NOTE} The lesson gives this run no figure callbacks."],
             gap=TINY_GAP),
    Workload("moons", "L7 moons MLP", moons_sides,
             [Comparison("raw tensors"), *FLOOR, Comparison("lesson DataLoader", "baseline/dlbasics", at_least(1)),
              Comparison("lesson DataLoader", "baseline/dlbasics", dlbasics="raw tensors")], [
        "All: 40 epochs (fast: 4), batch 64, validation on the test split each epoch, test at the end.",
        "raw tensors: randperm + index slices of the in-memory tensors; lesson DataLoader: TensorDataset + "
        "DataLoader(batch_size=64, shuffle=True), test DataLoader(batch_size=64).",
        f"{LESSON_NOTE} It also draws the DecisionBoundary figure every 5 epochs and logs to TensorBoard."],
             gap=MOONS_GAP),
    Workload("mnist_mlp", "MNIST 784-128-10, one epoch", partial(mnist_sides, lesson="mnist", run=MLP,
                                                                   make_net=raw_loops.mnist_mlp,
                                                                   figures=FIGURES["mnist_mlp"], bare=True),
             # issue 16: at least 4x the torchvision loop (it was 5x on the slower machine the target was set on)
             [Comparison("raw tensors"), *FLOOR, Comparison("torchvision loop", "baseline/dlbasics", at_least(4))],
             [*MNIST_NOTES, "dlbasics also draws the confusion-matrix and misclassified-digits figures after the "
                            "test.", "bare Lightning: the raw loop's network, loss and optimizer in a LightningModule "
                            "that logs nothing, on the lesson's datamodule (benchmarks/bare_lightning.py)."],
             max_repeats=3, gap=MLP_GAP),
    Workload("mnist_cnn", "MNIST SmallCNN, one epoch", cnn_sides,
             [Comparison("raw tensors", target=at_most(1.0)), Comparison("torchvision loop", "baseline/dlbasics")],
             [*MNIST_NOTES, "dlbasics also draws the feature-maps figure (8 digits x 17 tiles, PNG + TensorBoard "
                           "image) after each validation epoch and after the test."], max_repeats=3,
             extra=partial(rate_notes, net=raw_loops.small_cnn, input_shape=(1, 28, 28), classes=10,
                           target_side="dlbasics", target_fraction=0.40), gap=CNN_GAP),
    Workload("callbacks", "CNN callbacks overhead", callbacks_sides,
             [Comparison("without callbacks", "dlbasics/baseline", at_most(1.10), dlbasics="with callbacks")], [
        "The mnist_cnn dlbasics run (config parsing and MNIST loading included on both sides), with "
        "GradientFlowMonitor() and ActivationStats() (default arguments) appended to the lesson's callbacks, "
        "against the same run without them."], max_repeats=3,
             gap=CALLBACKS_GAP),
    Workload("precision", "MNIST SmallCNN epoch, fp32 vs bf16 autocast", precision_sides,
             [Comparison("32-true", dlbasics="bf16-mixed")], [
        "The mnist_cnn dlbasics run (one epoch, validation, test, feature maps) with `--trainer.plugins=null "
        "--trainer.precision=32-true` against `bf16-mixed`; 'last evaluation' gives each side's test accuracy. "
        "The config's `BF16WhereNative` takes bf16 only where the header says native bf16: yes. Without it, "
        "PyTorch's CPU bf16 kernels convert to fp32 and back, and bf16 is slower."], max_repeats=3),
    Workload("lessons_all", "`dlbasics lesson all`", lessons_all_sides,
             [Comparison(None, target=Target(f"≤ {LESSONS_ALL_TARGET_S:g} s", lambda ratio: ratio <= 1.0),
                         dlbasics="dlbasics lesson all", reference_s=LESSONS_ALL_TARGET_S)], [
        "`python -m dlbasics lesson all --out <tmp>` in a subprocess, run once (--quick adds --fast: the target "
        "applies to the full run only)."], max_repeats=1),
)}
