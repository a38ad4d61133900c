"""A lesson run at N seeds in one Lightning fit (a ``SeedEnsemble``), handed back as N solo-looking ``RunResult``s.

The lessons' runs are tiny full-batch fits where Lightning's fixed cost per epoch dwarfs the arithmetic: N seeds
trained one after another cost N times one; side by side in one fit they cost little more than one
(``python -m benchmarks.seeds``).
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import Checkpoint

from dlbasics.callbacks import (
    ActivationStats,
    ActivationSwap,
    FastLogging,
    GradientFlowMonitor,
    NonFiniteGuard,
    RNGStateCheckpoint,
    UpdateSizeMonitor,
    WeightHistograms,
)
from dlbasics.callbacks.figures import FigureCallback
from dlbasics.data.base import TensorDataModule
from dlbasics.data.mnist import MNISTDataModule
from dlbasics.data.zipped import ZippedDataModule
from dlbasics.lessons.runner import (
    CONFIGS,
    HPARAMS_FOLDER,
    LessonRunCLI,
    MetricHistory,
    Run,
    RunResult,
    SeedRuns,
    build_run,
    fit_and_test,
    log_hparams,
)
from dlbasics.models.ensemble import MemberRNG, SeedEnsemble

# Callbacks whose records of an ensemble ``member_view`` splits per member, or that need no splitting. Not
# ensembled: a checkpoint a lesson run keeps (``EarlyStopping`` and a best-epoch ``ModelCheckpoint`` watch one
# seed's ``val/loss``): a config's ``save_last`` checkpoint, which lesson runs drop, is the only one allowed.
PER_MEMBER_CALLBACKS = (MetricHistory, FastLogging, NonFiniteGuard, RNGStateCheckpoint, GradientFlowMonitor,
                        ActivationStats, ActivationSwap, UpdateSizeMonitor, WeightHistograms)
# Figure callbacks (DecisionBoundary, RegressionFit, NeuronMaps, ...) draw one model: in an ensemble, the first
# seed's (``FirstMemberFigure``), so the ``seeds/`` run's images are those of the first seed's solo run.
FIRST_MEMBER_CALLBACKS = (FigureCallback,)
# Data sets where a seed's arithmetic, not Lightning's per-epoch cost, sets the time: an ensemble wins nothing.
SOLO_DATA = (MNISTDataModule,)
# Overrides of settings ``SeedEnsemble`` refuses (they would couple the members), or that replace the model's own
# optimizer (LightningCLI's top-level ``--optimizer``/``--lr_scheduler``), which the ensemble would not use.
COUPLING_OVERRIDES = re.compile(r"--(model(\.init_args)?\.lr_scheduler|optimizer|lr_scheduler|trainer\.gradient_clip_val)\b")
SEED_SUFFIX = re.compile(r"^(?P<name>.+)/seed_(?P<seed>-?\d+)$")


def can_ensemble(run: Run, callbacks: Sequence[Callback] = ()) -> bool:
    """Whether ``run_ensemble`` can train ``run``'s seeds with the lesson's ``callbacks``, from its config file and
    overrides (cheap: the config is read as YAML, not parsed). False for figure callbacks, checkpoints the run
    keeps, early stopping, MNIST, and settings ``SeedEnsemble`` refuses (a learning-rate scheduler, gradient
    clipping). Figure callbacks are fine: they draw the first seed (``FirstMemberFigure``)."""
    allowed = PER_MEMBER_CALLBACKS + FIRST_MEMBER_CALLBACKS
    if not all(isinstance(c, allowed) for c in callbacks):
        return False
    config = yaml.safe_load((CONFIGS / run.config).read_text()) or {}
    trainer, model, data = (config.get(key) or {} for key in ("trainer", "model", "data"))
    if config.get("optimizer") or config.get("lr_scheduler") or trainer.get("gradient_clip_val"):
        return False
    if (model.get("init_args") or {}).get("lr_scheduler") is not None:
        return False
    if any(COUPLING_OVERRIDES.match(arg) for arg in (*run.overrides, *run.fast)):
        return False
    for entry in trainer.get("callbacks") or []:
        kind, monitor = resolve(entry.get("class_path", "")), (entry.get("init_args") or {}).get("monitor")
        dropped = issubclass(kind, Checkpoint) and monitor is None  # as ``runner.keeps_best`` decides
        if not (dropped or issubclass(kind, allowed)):
            return False
    return not issubclass(resolve(data.get("class_path", "")), SOLO_DATA)


def resolve(class_path: str) -> type:
    """The class a config's ``class_path`` names (``dlbasics.callbacks.NonFiniteGuard``); ``object`` if none."""
    module, _, name = class_path.rpartition(".")
    if not module:
        return object
    return getattr(importlib.import_module(module), name)


def run_ensemble(run: Run, lesson_dir: Path, seeds: Sequence[int], callbacks: Sequence[Callback] = (),
                 fast: bool = False, accelerator: str = "cpu", data_dir: Path | None = None) -> SeedRuns:
    """``run_seeds``, with all seeds trained in one fit logging to ``<lesson_dir>/<run.name>/seeds/`` (each seed's
    metrics as ``<stage>/<name>/seed_<seed>``).

    Seed ``s``'s model and datamodule are built as ``build_run(run, ..., s)`` builds them, seeded and in the same
    order, so each member starts from the weights and data of ``run.command(s)``; the config is parsed once. Each
    ``RunResult`` holds its seed's curves and test metrics under the solo names, its own model and datamodule, and
    ``member_view``s of the callbacks (layer names as in a solo run). ``seconds`` is each seed's share: the fit (and
    test) time divided by the number of seeds. ``callbacks`` are used as given (``run_seeds`` copies them). The
    seeds share one HParams session, ``seeds/hparams/`` (one dashboard row, the final metrics averaged over the
    seeds), and the first seed's ``WeightHistograms`` write ``seeds/seed_<seed>/`` (``split_histograms``).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("run_ensemble needs at least one seed, got none")
    cli = build_run(run, lesson_dir, seeds[0], callbacks, fast, accelerator, data_dir, version=f"{run.name}/seeds")
    trainer = cli.trainer
    trainer.callbacks[:] = [FirstMemberFigure(c) if isinstance(c, FigureCallback) else c for c in trainer.callbacks]
    cuda = trainer.strategy.root_device.type == "cuda"
    members: list[LightningModule] = [cli.model]
    datamodules: list[TensorDataModule] = [cli.datamodule]
    rngs = [MemberRNG(cuda)]  # right after the member is built: where its solo run's dropout starts drawing
    for seed in seeds[1:]:
        model, data = build_member(cli, seed)
        members.append(model)
        datamodules.append(data)
        rngs.append(MemberRNG(cuda))
    ensemble, data = SeedEnsemble(members, seeds, rngs), ZippedDataModule(datamodules)
    owners = split_histograms(trainer, seeds)
    history, tested, seconds = fit_and_test(trainer, ensemble, data, run.test)
    seconds /= len(seeds)
    log_dir = Path(trainer.logger.log_dir)
    results = []
    for i, (seed, model, member_data) in enumerate(zip(seeds, members, datamodules)):
        curves = own_metrics(history.curves, seed)
        final = {name: float(value) for name, value in own_metrics(tested, seed).items()}
        callbacks = [member_view(c, i, seed) for c in trainer.callbacks if owners.get(id(c), i) == i]
        results.append(RunResult(run.name, curves, final, model, member_data, callbacks, log_dir, seconds))
    # One HParams row for the seeds trained together (<run>/seeds/hparams), their final metrics averaged: a row per
    # seed would be a TensorBoard run per seed, and past 40 runs TensorBoard selects none of a lesson's by default.
    last = [{name: values[-1] for name, values in r.curves.items() if values} for r in results]
    log_hparams(log_dir / HPARAMS_FOLDER, run, list(seeds), fast, cli, {},
                {**mean_of(last), **mean_of([r.final for r in results])})
    return SeedRuns(run, seeds, results)


def mean_of(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over the rows that have it (the seeds of an ensemble)."""
    names = dict.fromkeys(name for row in rows for name in row)
    return {name: sum(row[name] for row in rows if name in row) / sum(name in row for row in rows) for name in names}


def split_histograms(trainer: Trainer, seeds: Sequence[int]) -> dict[int, int]:
    """Replace each ``WeightHistograms`` of the trainer by one for the first member: its layers only, named as in a
    solo run, written to ``<log_dir>/seed_<first seed>/`` (a TensorBoard run with a solo run's tags). One seed's
    histograms show what they teach at a fifth of the cost, and keep a lesson under TensorBoard's 40 runs.
    Returns ``{id(member's callback): member index}``."""
    owners: dict[int, int] = {}
    callbacks: list[Callback] = []
    for callback in trainer.callbacks:
        if not isinstance(callback, WeightHistograms):
            callbacks.append(callback)
            continue
        for i, seed in enumerate(seeds[:1]):
            member = copy.copy(callback)  # the same settings, watching one member
            member.module = f"members.{i}" + (f".{callback.module}" if callback.module else "")
            member.subfolder = f"seed_{seed}" + (f"/{callback.subfolder}" if callback.subfolder else "")
            owners[id(member)] = i
            callbacks.append(member)
    trainer.callbacks[:] = callbacks
    return owners


def build_member(cli: LessonRunCLI, seed: int) -> tuple[LightningModule, TensorDataModule]:
    """The model and datamodule of ``cli``'s config at another seed, as ``build_run`` would build them: seeded as
    LightningCLI seeds, then instantiated by the same parser and links, without parsing the config again."""
    config = cli.config.clone()
    config.seed_everything = seed
    config.data.init_args.seed = seed
    seed_everything(seed, workers=True)
    built = cli.parser.instantiate(config)
    return built.model, built.data


def own_metrics(values: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """A seed's values under their solo names (``train/loss/seed_3`` -> ``train/loss``), plus the values of no seed."""
    out = {}
    for key, value in values.items():
        match = SEED_SUFFIX.match(key)
        if match is None:
            out[key] = value
        elif int(match["seed"]) == seed:
            out[match["name"]] = value
    return out


def member_view(callback: Callback, index: int, seed: int) -> Callback:
    """What ``callback``, which watched the whole ensemble, saw of member ``index`` (seed ``seed``), as it would look
    after that member's solo run: a shallow copy whose records keep that member's layers only, named without the
    ensemble's ``members.<index>.`` (``network.layers.0``); ``MetricHistory`` keeps that seed's curves.

    The records split are ``history`` entries' ``layers`` (a dict or a list of names: ``GradientFlowMonitor``,
    ``ActivationStats``, ``ActivationSwap``, ``NonFiniteGuard``), a list ``layers`` and the ``labels``
    (``GradientFlowMonitor``: ``linear1 (network.layers.0)``, numbered within the member).
    Other callbacks, which keep nothing per layer, are returned as they are.
    """
    if isinstance(callback, FirstMemberFigure):  # it drew member 0 only
        return callback.figure if index == 0 else callback
    if isinstance(callback, MetricHistory):
        view = copy.copy(callback)
        view.curves = own_metrics(callback.curves, seed)
        return view
    history = getattr(callback, "history", None)
    if not isinstance(history, list):
        return callback
    prefix = f"members.{index}."
    view = copy.copy(callback)
    view.history = [{**entry, "layers": own_layers(entry["layers"], prefix)}
                    if isinstance(entry, dict) and "layers" in entry else entry for entry in history]
    if isinstance(getattr(callback, "layers", None), list):
        view.layers = own_layers(callback.layers, prefix)
    if isinstance(getattr(callback, "labels", None), dict):  # GradientFlowMonitor: linear1 (network.layers.0)
        own = own_layers(callback.labels, prefix)
        view.labels = {name: label.replace(prefix, "", 1) for name, label in own.items()}
    return view


def own_layers(layers: Mapping[str, Any] | Sequence[str], prefix: str) -> dict[str, Any] | list[str]:
    """The layers named ``<prefix><name>``, as ``<name>``: a dict's items or a list's names."""
    if isinstance(layers, Mapping):
        return {name[len(prefix):]: value for name, value in layers.items() if name.startswith(prefix)}
    return [name[len(prefix):] for name in layers if name.startswith(prefix)]


class FirstMemberFigure(FigureCallback):
    """A figure callback of a ``SeedEnsemble``'s first member: its hooks get that member and its part of each batch.

    ``figure`` then draws and publishes (in the ensemble's run folder, under its own tags) exactly what it would
    for the first seed's solo run. A ``RegressionFit`` without a ``true_function`` gets the first member's
    datamodule's, as its solo run would. For ``FigureCallback`` subclasses (which route their hooks to
    ``stage_start``, ``stage_batch``, ``stage_end``, and may use ``setup``, ``on_train_end``, ``check_before_run``).
    """

    def __init__(self, figure: FigureCallback) -> None:
        super().__init__()
        self.figure = figure

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        check = getattr(self.figure, "check_before_run", None)
        if callable(check):
            check(trainer, pl_module.members[0])

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        truth = getattr(trainer.datamodule.datamodules[0], "true_function", None)
        if getattr(self.figure, "true_function", False) is None and callable(truth):
            self.figure.true_function = truth
        self.figure.setup(trainer, pl_module.members[0], stage)

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.figure.stage_start(trainer, pl_module.members[0], stage)

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        self.figure.stage_batch(trainer, pl_module.members[0], stage, batch[0])  # the zipped batches: member 0's

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.figure.stage_end(trainer, pl_module.members[0], stage)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.figure.on_train_end(trainer, pl_module.members[0])
