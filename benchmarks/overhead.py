"""``python -m benchmarks.overhead``: what each piece of a lesson run adds over bare Lightning, one piece at a time.

The ``dlbasics/bare Lightning`` row of ``python -m benchmarks`` is one number; this splits it. The lesson's run
(L5 TinyNet, L4 DropNet or the L7 moons MLP) is fitted, with the lesson's epochs and data, by one plain Trainer
(CPU, no progress bar, no summary, no checkpointing) with more of the lesson's pieces each time:

1. ``bare``: the raw loop's network in a LightningModule that logs nothing (``bare_lightning.BareModule``);
2. ``updates``: the dlbasics system, updating its torchmetrics (loss mean, R^2 or accuracy) but logging nothing;
3. ``system``: the dlbasics system as it is (``self.log`` of those metrics, epoch means), with ``FastLogging``;
4. ``+ logger``: and the lessons' ``BufferedTensorBoardLogger``;
5. ``+ history``: and ``MetricHistory``, the lessons' curves;
6. ``+ figures``: and the figure callbacks the lesson passes the run (the whole lesson run, less its config parse).

All variants run interleaved (``timing.interleave``), each round in the same order; each is reported as the
median over rounds of its time divided by ``bare``'s time in the same round. Fit only (no test); the data is
built once, before timing.

``--metrics`` times instead the torchmetrics calls the L5 system makes per epoch, against the network's forward.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torchmetrics
from lightning.pytorch import Callback, LightningModule

from dlbasics.callbacks import FastLogging
from dlbasics.lessons.basics import MOONS
from dlbasics.lessons.runner import MetricHistory, build_run
from dlbasics.loggers import BufferedTensorBoardLogger

from benchmarks.bare_lightning import BareModule
from benchmarks.timing import Side, interleave, quiet
from benchmarks.workloads import DROPNET, FIGURES, TINYNET

RUNS = {"tinynet": TINYNET, "dropnet": DROPNET, "moons": MOONS}
Variant = Callable[[], tuple[LightningModule, dict]]


def variants(name: str, out: Path) -> tuple[dict[str, Variant], dict]:
    """The variants of the named workload, and the Trainer arguments they share (the run's budget)."""
    run = RUNS[name]
    ref = build_run(run, out / "reference", 0)
    data = ref.datamodule
    data.prepare_data()
    data.setup()
    trainer = ref.trainer
    shared = dict(max_epochs=trainer.max_epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                  enable_model_summary=False, enable_checkpointing=False,
                  num_sanity_val_steps=trainer.num_sanity_val_steps, datamodule=data)
    count = itertools.count()

    def system() -> LightningModule:
        return build_run(run, out / "model", 0).model

    def logger() -> BufferedTensorBoardLogger:
        return BufferedTensorBoardLogger(save_dir=str(out), name="overhead", version=str(next(count)),
                                         default_hp_metric=False)

    def bare() -> LightningModule:
        model = ref.model
        return BareModule(copy.deepcopy(model.network), model.loss, model.optimizer_factory)

    def updates_only() -> LightningModule:
        model = system()
        model.log_metrics = lambda *args, **kwargs: None
        return model

    def callbacks(*extra: Callback) -> list[Callback]:
        return [FastLogging(), *extra]

    return {
        "bare": lambda: (bare(), dict(logger=False, callbacks=[])),
        "updates": lambda: (updates_only(), dict(logger=False, callbacks=callbacks())),
        "system": lambda: (system(), dict(logger=False, callbacks=callbacks())),
        "+ logger": lambda: (system(), dict(logger=logger(), callbacks=callbacks())),
        "+ history": lambda: (system(), dict(logger=logger(), callbacks=callbacks(MetricHistory()))),
        "+ figures": lambda: (system(), dict(logger=logger(),
                                             callbacks=callbacks(MetricHistory(), *FIGURES.get(name, list)()))),
    }, shared


def per_call_us(call: Callable[[], object], n: int = 2000) -> float:
    for _ in range(50):
        call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def metric_costs() -> None:
    """Microseconds per call of what the L5 system does per stage and epoch (a full batch of 20 points)."""
    x, y, loss = torch.rand(20, 1), torch.rand(20, 1), torch.tensor(0.3)
    mean, r2 = torchmetrics.MeanMetric(), torchmetrics.R2Score()
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    costs = {"network forward (1-16-1 tanh MLP)": lambda: net(x),
             "MeanMetric.update(loss, weight)": lambda: mean.update(loss, weight=20),
             "R2Score.update": lambda: r2.update(x, y),
             "MeanMetric update + compute + reset":
                 lambda: (mean.update(loss, weight=20), mean.compute(), mean.reset()),
             "R2Score update + compute + reset": lambda: (r2.update(x, y), r2.compute(), r2.reset())}
    print("| call | us per call |\n|---|---|")
    for name, call in costs.items():
        print(f"| {name} | {per_call_us(call):.0f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=list(RUNS), default="tinynet")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--metrics", action="store_true", help="time the per-epoch torchmetrics calls instead")
    args = p.parse_args(argv)
    if args.metrics:
        metric_costs()
        return 0
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats} must be at least 1")
    quiet()
    made, shared = variants(args.workload, Path(tempfile.mkdtemp(prefix="dlbasics-overhead-")))
    data = shared.pop("datamodule")

    def side(make: Variant) -> Side:
        def prepare() -> Callable[[], dict]:
            model, extra = make()
            trainer = L.Trainer(**shared, **extra)
            return lambda: trainer.fit(model, datamodule=data) or {}
        return prepare

    timings = interleave({name: side(make) for name, make in made.items()}, args.repeats, args.workload)
    print(f"{args.workload}, {shared['max_epochs']} epochs, {args.repeats} interleaved rounds\n")
    print("| variant | median s | x bare (median of rounds) | per round |\n|---|---|---|---|")
    for name, times in timings.seconds.items():
        rounds = [t / b for t, b in zip(times, timings.seconds["bare"])]
        print(f"| {name} | {timings.median(name):.2f} | {timings.paired_ratio(name, 'bare'):.2f} | "
              f"{', '.join(f'{r:.2f}' for r in rounds)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
