"""A lesson's runs: a config of ``configs/`` plus overrides, built by the same parser and links as ``dlbasics fit``."""

from __future__ import annotations

import copy
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from dlbasics.callbacks import FastLogging
from dlbasics.callbacks.figures.base import forward_eval
from dlbasics.data.base import TensorDataModule
from dlbasics.lightning_cli import DLBasicsCLI, check_callbacks_before_run, cli_main
from dlbasics.loggers import (
    HPARAMS_FOLDER,
    BufferedTensorBoardLogger,
    config_hparams,
    final_metrics,
    override_hparams,
    trainer_hparams,
    write_hparams,
)

CONFIGS = files("dlbasics") / "configs"  # ``configs/`` in a clone is a link to this folder


@dataclass(frozen=True)
class Run:
    """One run of a lesson, exactly ``dlbasics fit --config configs/<config> <overrides>`` with the lesson's seed.

    Args:
        name: short name, also the run's folder and TensorBoard run name (``tanh``, ``dropout_0.5``).
        config: file name of the run's base config in ``configs/``.
        overrides: command-line overrides of that config (``--model.network.dropout=0.3``).
        test: run ``trainer.test`` after fitting.
        fast: the overrides that replace the default shortening (a tenth of the epochs, at least 3) with
            ``dlbasics lesson --fast``.
        default_seeds: how many seeds the run gets when ``dlbasics lesson`` is given no ``--seeds``; None: the
            lesson's default (``DEFAULT_SEEDS``). The MNIST runs say 1: a seed of them takes a minute.
        tag_prefix: a TensorBoard tag group of the run's own (``BufferedTensorBoardLogger(prefix=...)``:
            ``moons`` -> ``moons-train/loss``, on its figures too), for minibatch runs in a lesson of full-batch
            ones: TensorBoard draws a tag of every run in one chart, and a step is an epoch in one and a minibatch
            in the other. Empty: the plain tags.
    """

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    test: bool = False
    fast: tuple[str, ...] = ()
    default_seeds: int | None = None
    tag_prefix: str = ""

    def args(self, seed: int, fast: bool = False) -> list[str]:
        """The ``dlbasics fit`` arguments of this run (without the subcommand)."""
        return ["--config", str(CONFIGS / self.config), *self.overrides, f"--seed_everything={seed}",
                f"--data.seed={seed}", *(self.fast if fast else ())]

    def hparams(self, seed: int | Sequence[int], fast: bool = False) -> dict[str, Any]:
        """Its name, config, seed (or, for seeds trained together, ``seeds``: ``"0, 1, 2"``) and ``--fast``, and the
        settings its overrides change (``--model.network.dropout=0.3`` -> ``network.dropout: 0.3``,
        ``--trainer.max_epochs=30`` -> ``trainer.max_epochs: 30``)."""
        seeds = {"seed": seed} if isinstance(seed, int) else {"seeds": ", ".join(map(str, seed))}
        return {"run": self.name, "config": self.config, **seeds, "fast": fast,
                **override_hparams((*self.overrides, *(self.fast if fast else ())))}

    def command(self, seed: int) -> str:
        """The command that reruns this run alone, from a clone of the repository."""
        args = [f"configs/{self.config}", *self.overrides, f"--seed_everything={seed}", f"--data.seed={seed}"]
        return "dlbasics fit --config " + " ".join(shlex.quote(a) for a in args)


class MetricHistory(Callback):
    """Keep every epoch's logged metrics in memory: ``curves["val/loss"] == [epoch 0, epoch 1, ...]``.

    Read at the end of each training epoch, when ``callback_metrics`` holds the epoch's training
    aggregates and the validation that ran in that epoch (one host sync per epoch).
    """

    def __init__(self) -> None:
        self.curves: dict[str, list[float]] = {}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for name, value in trainer.callback_metrics.items():
            self.curves.setdefault(name, []).append(float(value))


@dataclass
class RunResult:
    """What a run left: per-epoch curves, final metrics, and the live objects for plots."""

    name: str
    curves: dict[str, list[float]]
    final: dict[str, float]
    model: LightningModule
    data: TensorDataModule
    callbacks: Sequence[Callback]
    log_dir: Path
    seconds: float

    def callback(self, kind: type[Callback]) -> Any:
        """The run's (first) callback of this class: one the lesson added, or one its config holds."""
        return next(c for c in self.callbacks if isinstance(c, kind))

    @property
    def epochs(self) -> int:
        """How many epochs it trained: its budget, or fewer where a callback (``EarlyStopping``) stopped it."""
        return max(map(len, self.curves.values()), default=0)

    @property
    def best_checkpoint(self) -> Path:
        """The checkpoint of its best epoch, kept by its ``ModelCheckpoint`` that monitors a metric.

        Raises:
            ValueError: if the run has no such checkpoint, or it saved none.
        """
        kept = [c.best_model_path for c in self.callbacks if keeps_best(c)]
        if not kept or not kept[0]:
            raise ValueError(f"run {self.name!r} kept no best-epoch checkpoint: give its config a ModelCheckpoint "
                             "with monitor: val/loss (as configs/sine_early_stopping.yaml does)")
        return Path(kept[0])

    @property
    def diverged(self) -> bool:
        """Whether its training loss turned NaN or inf (a run without NonFiniteGuard trains on with NaN weights)."""
        return not np.all(np.isfinite(self.curves.get("train/loss", [np.nan])))

    def tail_mean(self, metric: str, epochs: int = 10) -> float:
        """Mean of the metric over the last ``epochs`` epochs: steadier than the last value of a noisy curve."""
        values = self.curves[metric][-epochs:]
        return sum(values) / len(values)

    def last(self, metric: str) -> float:
        """The metric's final value: a test metric, or the last epoch's value of a curve."""
        if metric in self.final:
            return self.final[metric]
        return self.curves[metric][-1]

    def evaluate(self, split: str) -> dict[str, float]:
        """The trained model's loss and metrics over a whole split, in eval mode (no dropout, batch-norm running
        statistics): ``{"loss": ..., "acc": ...}``. The ``train/*`` curves are not that: they average the training
        batches as they were trained, with dropout active.
        """
        model = self.model
        x, y = (t.to(model.device) for t in self.data.split(split))
        outputs = forward_eval(model, x)
        metrics = model.make_metrics(model.hparams.num_outputs).to(model.device)
        values = {name: float(value) for name, value in metrics(outputs, y).items()}
        return {"loss": float(model.loss(outputs, y)), **values}


@dataclass
class SeedRuns:
    """One run of a lesson at each of its seeds: ``results[i]`` was trained with ``seeds[i]``."""

    run: Run
    seeds: list[int]
    results: list[RunResult]

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def first(self) -> RunResult:
        """The first seed's run: the one a figure of a single fit (a decision boundary) shows."""
        return self.results[0]

    def each(self, measure: Callable[[RunResult], float]) -> list[float]:
        """``measure`` of every seed's run."""
        return [float(measure(result)) for result in self.results]

    def last(self, metric: str) -> list[float]:
        """Every seed's final value of ``metric`` (see ``RunResult.last``)."""
        return self.each(lambda r: r.last(metric))

    def tail_mean(self, metric: str, epochs: int = 10) -> list[float]:
        return self.each(lambda r: r.tail_mean(metric, epochs))

    def curves(self, metric: str) -> np.ndarray:
        """``(seeds, epochs)`` of a per-epoch metric; a seed that logged fewer epochs is padded with NaN."""
        return stack([r.curves[metric] for r in self.results if metric in r.curves])

    def has(self, metric: str) -> bool:
        return any(metric in r.curves for r in self.results)


def stack(series: Sequence[Sequence[float]]) -> np.ndarray:
    """Per-seed series of unequal length as one ``(seeds, longest)`` array, NaN-padded."""
    out = np.full((len(series), max((len(s) for s in series), default=0)), np.nan)
    for row, values in zip(out, series):
        row[:len(values)] = values
    return out


def keeps_best(callback: Callback) -> bool:
    """A checkpoint that monitors a metric (``ModelCheckpoint(monitor="val/loss")``): it picks the run's best epoch."""
    return isinstance(callback, Checkpoint) and getattr(callback, "monitor", None) is not None


class LessonRunCLI(DLBasicsCLI):
    """The ``dlbasics fit`` parser and links, with the lesson's trainer: its logger, its callbacks.

    The config's callbacks stay (an activation swap is part of the run), except checkpoints that only save epochs
    (``save_last``): lessons compare curves, and those would only cost time. A checkpoint that keeps the best epoch
    (``keeps_best``) is part of the run and stays, as do the lesson's own, writing into the run's folder
    (``<run>/checkpoints``). The config's other trainer settings (epochs, batch limits) stay.
    """

    def __init__(self, *args: Any, lesson: dict[str, Any], **kwargs: Any) -> None:
        self.lesson = lesson
        super().__init__(*args, **kwargs)

    def before_instantiate_classes(self) -> None:
        # ``dlbasics lesson --data-dir``: where the data sets are, for configs that read one from disk (MNIST).
        data = self.config["data"]["init_args"]
        if self.lesson["data_dir"] is not None and "data_dir" in data:
            data["data_dir"] = str(self.lesson["data_dir"])

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = dict(self.config_init["trainer"])
        kept = [c for c in config.pop("callbacks") or [] if not isinstance(c, Checkpoint) or keeps_best(c)]
        callbacks = [*self.lesson["callbacks"], *kept]
        for callback in callbacks:
            if isinstance(callback, ModelCheckpoint):  # each seed's run its own folder, never a shared one
                callback.dirpath = str(Path(self.lesson["logger"].log_dir) / "checkpoints")
        if self.lesson["shorten"] and config.get("max_epochs"):
            config["max_epochs"] = max(3, config["max_epochs"] // 10)
        config.update(logger=self.lesson["logger"], callbacks=callbacks, accelerator=self.lesson["accelerator"],
                      devices=1, enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
                      enable_progress_bar=False, enable_model_summary=False)
        return Trainer(**config)


def build_run(run: Run, lesson_dir: Path, seed: int, callbacks: Sequence[Callback] = (), fast: bool = False,
              accelerator: str = "cpu", data_dir: Path | None = None, version: str | None = None) -> LessonRunCLI:
    """Parse and instantiate a run: seeded first, as ``dlbasics fit`` does, so same architectures start alike.

    It logs to ``<lesson_dir>/<version>`` (default: the run's name).
    """
    # Every value is logged; the event file is flushed every few seconds instead of twice per epoch.
    logger = BufferedTensorBoardLogger(save_dir=str(lesson_dir.parent), name=lesson_dir.name,
                                       version=version or run.name, default_hp_metric=False, prefix=run.tag_prefix)
    lesson = {"logger": logger, "accelerator": accelerator, "shorten": fast and not run.fast, "data_dir": data_dir,
              # FastLogging: the L5 run is 1.2x faster with it (python -m benchmarks.fast_logging)
              "callbacks": [MetricHistory(), FastLogging(), *callbacks]}
    return cli_main(run.args(seed, fast), run=False, cli_class=LessonRunCLI, lesson=lesson)


def run_lesson_run(run: Run, lesson_dir: Path, seed: int, callbacks: Sequence[Callback] = (), fast: bool = False,
                   accelerator: str = "cpu", data_dir: Path | None = None, version: str | None = None) -> RunResult:
    """Fit (and test) one run, logging to ``<lesson_dir>/<version>/`` (default: the run's name), its HParams
    session (hyperparameters and final metrics, ``log_hparams``) to ``<lesson_dir>/<version>/hparams/``."""
    cli = build_run(run, lesson_dir, seed, callbacks, fast, accelerator, data_dir, version)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    history, final, seconds = fit_and_test(trainer, model, data, run.test)
    log_dir = Path(trainer.logger.log_dir)
    log_hparams(log_dir / HPARAMS_FOLDER, run, seed, fast, cli, history.curves, final)
    return RunResult(run.name, history.curves, final, model, data, trainer.callbacks, log_dir, seconds)


def log_hparams(folder: Path, run: Run, seed: int | Sequence[int], fast: bool, cli: LessonRunCLI,
                curves: dict[str, list[float]], final: dict[str, float]) -> None:
    """Write the run's HParams session (``loggers.write_hparams``): ``run.hparams``, every model and data setting of
    its config as ``dlbasics fit`` logs them (so a baseline run shows the config's ``network.batch_norm: false``
    where a variant overrides it, and TensorBoard finds which settings differ) and the epochs it was given; and its
    final metrics: each curve's last value (train/, val/) and the test metrics."""
    trainer = cli.trainer
    config = cli.config.as_dict()
    settings = config_hparams(config["model"], config["data"])
    settings.pop("data.seed", None)  # the run's seed, logged as "seed"
    hparams = {**run.hparams(seed, fast), **settings, **trainer_hparams(trainer)}
    last = {name: values[-1] for name, values in curves.items() if values}
    write_hparams(folder, hparams, final_metrics({**last, **final}, trainer.logger), trainer.global_step)


def fit_and_test(trainer: Trainer, model: LightningModule, data: Any,
                 test: bool) -> tuple[MetricHistory, dict[str, float], float]:
    """Check the callbacks, fit (and test): the trainer's ``MetricHistory``, the test metrics, the seconds taken."""
    check_callbacks_before_run(trainer, model)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    final: dict[str, float] = {}
    if test:
        (tested,) = trainer.test(model, datamodule=data, verbose=False)
        final = {name: float(value) for name, value in tested.items()}
    history = next(c for c in trainer.callbacks if isinstance(c, MetricHistory))
    return history, final, time.perf_counter() - start


def run_seeds(run: Run, lesson_dir: Path, seeds: Sequence[int], callbacks: Sequence[Callback] = (),
              **kwargs: Any) -> SeedRuns:
    """The run at each seed, logging to ``<lesson_dir>/<run.name>/seed_<seed>/``; each seed gets fresh copies of
    ``callbacks``. ``kwargs`` are ``run_lesson_run``'s (``fast``, ``accelerator``, ``data_dir``).

    Several seeds of a run that ``can_ensemble`` are trained in one fit instead (``run_ensemble``, logging to
    ``<lesson_dir>/<run.name>/seeds/``): the same results, in a fraction of the time.
    """
    from dlbasics.lessons.ensemble import (  # ensemble.py builds on this module
        can_ensemble,
        run_ensemble,
    )

    if len(seeds) > 1 and can_ensemble(run, callbacks):
        return run_ensemble(run, lesson_dir, seeds, copy.deepcopy(list(callbacks)), **kwargs)
    results = [run_lesson_run(run, lesson_dir, seed, copy.deepcopy(list(callbacks)), version=f"{run.name}/seed_{seed}",
                              **kwargs) for seed in seeds]
    return SeedRuns(run, list(seeds), results)


def run_config(run: Run, seed: int) -> str:
    """The run's full config as YAML, as ``dlbasics fit --print_config`` prints it for ``run.command(seed)``."""
    cli = cli_main(run.args(seed), run=False)
    return cli.parser.dump(cli.config, skip_none=False)
