"""A lesson's runs: a config of ``configs/`` plus overrides, built by the same parser and links as ``dlbasics fit``."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint

from dlbasics.callbacks import FastLogging
from dlbasics.data.base import TensorDataModule
from dlbasics.lightning_cli import DLBasicsCLI, check_callbacks_before_run, cli_main
from dlbasics.loggers import BufferedTensorBoardLogger

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
    """

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    test: bool = False
    fast: tuple[str, ...] = ()

    def args(self, seed: int, fast: bool = False) -> list[str]:
        """The ``dlbasics fit`` arguments of this run (without the subcommand)."""
        return ["--config", str(CONFIGS / self.config), *self.overrides, f"--seed_everything={seed}",
                f"--data.seed={seed}", *(self.fast if fast else ())]

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

    def tail_mean(self, metric: str, epochs: int = 10) -> float:
        """Mean of the metric over the last ``epochs`` epochs: steadier than the last value of a noisy curve."""
        values = self.curves[metric][-epochs:]
        return sum(values) / len(values)

    def last(self, metric: str) -> float:
        """The metric's final value: a test metric, or the last epoch's value of a curve."""
        if metric in self.final:
            return self.final[metric]
        return self.curves[metric][-1]


class LessonRunCLI(DLBasicsCLI):
    """The ``dlbasics fit`` parser and links, with the lesson's trainer: its logger, no checkpoints, its callbacks.

    The config's callbacks stay (an activation swap is part of the run), except checkpointing: lessons compare
    curves, and checkpoints would only cost time. The config's other trainer settings (epochs, batch limits) stay.
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
        kept = [c for c in config.pop("callbacks") or [] if not isinstance(c, Checkpoint)]
        if self.lesson["shorten"] and config.get("max_epochs"):
            config["max_epochs"] = max(3, config["max_epochs"] // 10)
        config.update(logger=self.lesson["logger"], callbacks=[*self.lesson["callbacks"], *kept],
                      accelerator=self.lesson["accelerator"], devices=1, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
        return Trainer(**config)


def build_run(run: Run, lesson_dir: Path, seed: int, callbacks: Sequence[Callback] = (), fast: bool = False,
              accelerator: str = "cpu", data_dir: Path | None = None) -> LessonRunCLI:
    """Parse and instantiate a run: seeded first, as ``dlbasics fit`` does, so same architectures start alike."""
    # Every value is logged; the event file is flushed every few seconds instead of twice per epoch.
    logger = BufferedTensorBoardLogger(save_dir=str(lesson_dir.parent), name=lesson_dir.name, version=run.name,
                                       default_hp_metric=False)
    lesson = {"logger": logger, "accelerator": accelerator, "shorten": fast and not run.fast, "data_dir": data_dir,
              # FastLogging: the L5 run is 1.2x faster with it (python -m benchmarks.fast_logging)
              "callbacks": [MetricHistory(), FastLogging(), *callbacks]}
    return cli_main(run.args(seed, fast), run=False, cli_class=LessonRunCLI, lesson=lesson)


def run_lesson_run(run: Run, lesson_dir: Path, seed: int, callbacks: Sequence[Callback] = (), fast: bool = False,
                   accelerator: str = "cpu", data_dir: Path | None = None) -> RunResult:
    """Fit (and test) one run, logging to ``<lesson_dir>/<run.name>/``."""
    cli = build_run(run, lesson_dir, seed, callbacks, fast, accelerator, data_dir)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    check_callbacks_before_run(trainer, model)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    final: dict[str, float] = {}
    if run.test:
        (tested,) = trainer.test(model, datamodule=data, verbose=False)
        final = {name: float(value) for name, value in tested.items()}
    history = next(c for c in trainer.callbacks if isinstance(c, MetricHistory))
    return RunResult(run.name, history.curves, final, model, data, trainer.callbacks,
                     Path(trainer.logger.log_dir), time.perf_counter() - start)


def run_config(run: Run, seed: int) -> str:
    """The run's full config as YAML, as ``dlbasics fit --print_config`` prints it for ``run.command(seed)``."""
    cli = cli_main(run.args(seed), run=False)
    return cli.parser.dump(cli.config, skip_none=False)
