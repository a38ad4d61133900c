"""A TensorBoard logger that flushes on a timer, and the runs' hyperparameters for TensorBoard's HParams dashboard."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from dlbasics.checks import check_number

# The tag group of the validation metrics while validation runs on the test split (``val_on_test/loss``).
VALIDATION_ON_TEST = "val_on_test"


class BufferedTensorBoardLogger(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger``, except that ``save`` flushes the event file at most every ``flush_every_s``,
    the ``epoch`` scalar gets one point per step, and validation on the test split is tagged so.

    Tags say which points they measure: while validation runs on the test split (a dlbasics datamodule without a
    validation split says so through ``label_validation_split``), ``val/...`` values and figures are written as
    ``val_on_test/...``. The metrics keep their names in the trainer (``val/loss`` for checkpoints, early stopping
    and ``callback_metrics``); only TensorBoard's tags change (``tag``).

    Lightning calls ``save`` after each write of metrics (each training and each validation epoch end); the stock
    logger then flushes the event file and checks the hyperparameters file on disk every time. For runs of
    hundreds of tiny full-batch epochs that costs about as much as the training steps (``python -m benchmarks``,
    L5). Every value is still written; TensorBoard just sees it up to ``flush_every_s`` later, and everything is
    flushed when the run ends (``finalize``).

    Args:
        save_dir: folder of the logs (as for ``TensorBoardLogger``).
        flush_every_s: the least number of seconds between two flushes; 0 flushes on every ``save`` (the stock
            behaviour).
        prefix: a tag group of the run's own, as Lightning's ``prefix`` (``moons`` -> ``moons-train/loss``), on its
            figures' and layouts' tags too (``tag``).
        **kwargs: the other ``TensorBoardLogger`` arguments (``name``, ``version``, ``default_hp_metric``, ...).
    """

    def __init__(self, save_dir: str, flush_every_s: float = 5.0, prefix: str = "", **kwargs: Any) -> None:
        check_number(flush_every_s, "flush_every_s", minimum=0.0)  # seconds
        super().__init__(save_dir, **kwargs)  # no prefix for Lightning to add: ``tag`` adds it, to every tag
        self.tag_prefix = prefix
        self.flush_every_s = flush_every_s
        self._last_flush = float("-inf")
        self._epoch_step: int | None = None  # the last step an ``epoch`` value was written at
        self.validation_split = "val"  # the split validation runs on: "val", or "test" (``label_validation_split``)

    def tag(self, name: str) -> str:
        """The TensorBoard tag of the metric or figure ``name``: while validation runs on the test split, each
        ``val`` part of it becomes ``val_on_test`` (``val/loss`` -> ``val_on_test/loss``, ``boundary/val`` ->
        ``boundary/val_on_test``), after the ``prefix`` if there is one (``moons-val_on_test/loss``)."""
        if self.validation_split == "test":
            name = "/".join(VALIDATION_ON_TEST if part == "val" else part for part in name.split("/"))
        return f"{self.tag_prefix}{self.LOGGER_JOIN_CHAR}{name}" if self.tag_prefix else name

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if "epoch" in metrics and step is not None:
            tested = all(name.startswith("test/") for name in metrics if name != "epoch")
            if step == self._epoch_step or tested:
                metrics = {name: value for name, value in metrics.items() if name != "epoch"}
            else:
                self._epoch_step = step
        if metrics:
            super().log_metrics({self.tag(name): value for name, value in metrics.items()}, step)

    @rank_zero_only
    def save(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_every_s:
            self._last_flush = now
            super().save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self._last_flush = float("-inf")  # the end of a run always flushes and writes hparams.yaml
        super().finalize(status)


def tag_for(logger: Any, name: str) -> str:
    """The tag ``logger`` writes the metric or figure ``name`` under: ``BufferedTensorBoardLogger.tag``, or
    ``name`` for any other logger."""
    return logger.tag(name) if isinstance(logger, BufferedTensorBoardLogger) else name


def label_validation_split(trainer: Trainer | None, split: str) -> None:
    """Tell the trainer's ``BufferedTensorBoardLogger`` loggers which split validation runs on, ``"val"`` or ``"test"``
    (their ``tag`` follows it); other loggers, and no trainer, are left alone."""
    if split not in ("val", "test"):
        raise ValueError(f"validation runs on the 'val' or the 'test' split, not {split!r}")
    for logger in trainer.loggers if trainer is not None else ():
        if isinstance(logger, BufferedTensorBoardLogger):
            logger.validation_split = split


# HParams dashboard: a run's hyperparameters and final metrics are a "session" in a folder of its own,
# ``<run>/hparams``, holding only them. The dashboard takes every scalar tag of a session's folder (and below) as a
# metric column, so the run's own event file (hundreds of grad/ and act/ tags) stays out of it. No experiment
# summary is written: the dashboard would use the first one it finds for every run under the logdir, hiding the
# hyperparameters of the others; without one it lists the union of all sessions' hyperparameters.
HPARAMS_FOLDER = "hparams"
FINAL = "final"  # the metric tags of a session: final/train/loss, final/test/acc, ...
PlainValue = str | int | float | bool


def plain_value(value: Any) -> PlainValue | None:
    """``value`` as TensorBoard's HParams dashboard takes it: a str/int/float/bool as is, a list or mapping as its
    compact JSON text (``[64, 64]``), anything else as ``str(value)``; None (a setting left unset) stays None."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, default=str, separators=(", ", ": "))
    return str(value)


def flatten_init_args(config: Mapping[str, Any], prefix: str = "") -> dict[str, PlainValue]:
    """A ``class_path``/``init_args`` config as flat plain values: ``{"network": "dlbasics.models.components.MLP",
    "network.dropout": 0.3, "optimizer.lr": 0.01}`` (a class under its key, its arguments under ``key.arg``);
    unset (None) values are left out."""
    out: dict[str, PlainValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "class_path" in value:
            out[name] = value["class_path"]
            out.update(flatten_init_args(value.get("init_args") or {}, f"{name}."))
        elif isinstance(value, Mapping) and value:
            out.update(flatten_init_args(value, f"{name}."))
        elif (plain := plain_value(value)) is not None:
            out[name] = plain
    return out


def config_hparams(model: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, PlainValue]:
    """The model's and the data's settings of a run's config (``class_path``/``init_args`` each) as the HParams
    dashboard shows them: ``model``, ``network``, ``network.dropout``, ``optimizer.lr``, ..., ``data``,
    ``data.noise``, ... (the model's arguments without a ``model.`` prefix, as ``override_hparams`` names them)."""
    hparams = {name.removeprefix("model."): value for name, value in flatten_init_args({"model": model}).items()}
    return {**hparams, **flatten_init_args({"data": data})}


def trainer_hparams(trainer: Trainer) -> dict[str, PlainValue]:
    """What the trainer ran with that the config may not say: its epoch budget and the precision it trained in
    (``32-true``, or ``bf16-mixed`` where ``dlbasics.precision.BF16WhereNative`` found native bf16)."""
    return {"trainer.max_epochs": trainer.max_epochs, "trainer.precision": str(trainer.precision)}


def final_metrics(values: Mapping[str, Any], logger: Any = None) -> dict[str, float]:
    """The ``train/``, ``val/`` and ``test/`` values among ``values`` as finite floats, tagged ``final/<tag>``
    with the tag ``logger`` writes them under (``tag_for``: ``final/val_on_test/loss`` for validation on the
    test split)."""
    out = {}
    for name, value in values.items():
        number = float(value)
        if name.startswith(("train/", "val/", "test/")) and math.isfinite(number):
            out[f"{FINAL}/{tag_for(logger, name)}"] = number
    return out


def write_hparams(folder: Path, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> Path:
    """Write a TensorBoard HParams session into ``folder``: the plain ``hparams`` (None values left out), each
    metric as one scalar at ``step``, and the session's end. One row of the HParams dashboard."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard import SummaryWriter

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        plain = plain_value(value)
        if isinstance(plain, bool):  # before int: a bool is an int
            start.hparams[name].bool_value = plain
        elif isinstance(plain, (int, float)):
            start.hparams[name].number_value = plain
        elif plain is not None:
            start.hparams[name].string_value = plain
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    writer = SummaryWriter(str(folder))
    try:
        writer.file_writer.add_summary(_hparams_summary(plugin_data_pb2.HParamsPluginData(session_start_info=start)),
                                       step)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, global_step=step)
        writer.file_writer.add_summary(_hparams_summary(plugin_data_pb2.HParamsPluginData(session_end_info=end)),
                                       step)
    finally:
        writer.close()
    return folder


def _hparams_summary(data: Any) -> Any:
    """A ``Summary`` holding HParams plugin data (a session's start or end) under the plugin's own tag."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata

    tag = metadata.SESSION_START_INFO_TAG if data.HasField("session_start_info") else metadata.SESSION_END_INFO_TAG
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def override_hparams(overrides: Iterable[str]) -> dict[str, PlainValue]:
    """Command-line overrides as hyperparameters named as ``flatten_init_args`` names them:
    ``--model.network.dropout=0.3`` -> ``{"network.dropout": 0.3}``, ``--model.optimizer=torch.optim.SGD`` ->
    ``{"optimizer": "torch.optim.SGD"}``, ``--data.noise_std=1.0`` -> ``{"data.noise_std": 1.0}``,
    ``--trainer.max_epochs=30`` -> ``{"trainer.max_epochs": 30}``. Numbers and true/false become numbers and bools,
    other values stay text (``[64, 64]``). Left out: the seeds (``--seed_everything``, ``--data.seed``: logged as
    ``seed``), ``--config`` and ``--trainer.callbacks`` (diagnostics, not settings compared).
    """
    out: dict[str, PlainValue] = {}
    items = list(overrides)
    for i, item in enumerate(items):
        if not item.startswith("--"):
            continue
        key, has_value, text = item[2:].partition("=")
        if not has_value:  # ``--key value``
            text = items[i + 1] if i + 1 < len(items) and not items[i + 1].startswith("--") else "true"
        parts = [part for part in key.split(".") if part != "init_args"]
        if parts[0] == "model":
            parts = parts[1:] or ["model"]
        name = ".".join(parts)
        if name in ("seed_everything", "data.seed", "config") or name.startswith("trainer.callbacks"):
            continue
        out[name] = parse_value(text)
    return out


def parse_value(text: str) -> PlainValue:
    """An override's text as an int, float or bool where it is one (``0.3``, ``1e-05``, ``true``), else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
