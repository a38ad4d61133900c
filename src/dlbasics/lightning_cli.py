"""``dlbasics fit|validate|test|predict``: LightningCLI over the project's systems and datamodules."""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from dlbasics.checkpoint_checks import check_network_settings, check_parameter_shapes, load_checkpoint
from dlbasics.cli import LIGHTNING_SUBCOMMANDS
from dlbasics.data.base import TensorDataModule
from dlbasics.distributed import release_process_group
from dlbasics.leftovers import outermost_missing
from dlbasics.loggers import HPARAMS_FOLDER, config_hparams, final_metrics, trainer_hparams, write_hparams
from dlbasics.models.system import System
from dlbasics.predictions import save_predictions
from dlbasics.resume import find_last_checkpoint

SETTINGS_HINT = ("The model's and the data's own settings: --model.help CLASS and --data.help CLASS, e.g. "
                 "--model.help dlbasics.models.Classifier, --data.help dlbasics.data.MoonsDataModule; a network's: "
                 "--model.network.help dlbasics.models.components.MLP. Start from a config: "
                 "--config configs/NAME.yaml.")
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")  # --ckpt_path names Lightning resolves itself


class DLBasicsCLI(LightningCLI):
    """LightningCLI that links what the data knows (input shape, outputs) into the model."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (a LightningArgumentParser)
        # Resolved on the instantiated datamodule, so configs never state these twice.
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.link_arguments("data.num_outputs", "model.init_args.num_outputs", apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:  # noqa: ANN001 (LightningCLI's signature)
        super().parse_arguments(parser, args)
        self._args = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
        self._checkpoint: tuple[str, dict[str, Any]] | None = None  # (path, content): loaded once, checked twice
        # Before Lightning reads the checkpoint's settings over the config's (in __init__, right after this).
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path not in (None, *LIGHTNING_CKPT_NAMES):
            network = self.config[subcommand]["model"].get("init_args", {}).get("network")
            check_network_settings(path, self._load_checkpoint(path),
                                   network.as_dict() if hasattr(network, "as_dict") else network)

    def _load_checkpoint(self, path: str) -> dict[str, Any]:
        if self._checkpoint is None or self._checkpoint[0] != path:  # `--ckpt_path last` resolves to a path later
            self._checkpoint = (path, load_checkpoint(path))
        return self._checkpoint[1]

    # LightningCLI runs ``self.<subcommand>`` where defined: each runs the trainer's, removing a failed run's folder.
    def fit(self, **kwargs: Any) -> None:
        self._without_leftovers(self.trainer.fit, **kwargs)

    def validate(self, **kwargs: Any) -> None:
        self._without_leftovers(self.trainer.validate, **kwargs)

    def test(self, **kwargs: Any) -> None:
        self._without_leftovers(self.trainer.test, **kwargs)

    def predict(self, **kwargs: Any) -> None:
        predictions = self._without_leftovers(self.trainer.predict, **kwargs)
        if self.trainer.is_global_zero and predictions:
            save_predictions(predictions, self.trainer, self.datamodule)

    def _without_leftovers(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """Run ``method``; if it fails before a training step, remove the run folder it created (TensorBoard would
        list an empty run). A fit that trained keeps its folder: its curves and checkpoints tell what happened."""
        created = outermost_missing(Path(self.trainer.log_dir)) if self.trainer.log_dir else None
        try:
            return method(**kwargs)
        except BaseException:
            if created is not None and self.trainer.global_step == 0 and self.trainer.is_global_zero:
                shutil.rmtree(created, ignore_errors=True)
            raise

    def before_fit(self) -> None:
        if self.trainer.max_epochs == 0:
            raise ValueError("trainer.max_epochs 0 trains nothing; give at least 1 (or -1 for no limit)")
        for logger in self.trainer.loggers:
            logger.version  # noqa: B018 (fixes the version now, so ddp_spawn workers log where "Logs:" points)
            if isinstance(logger, TensorBoardLogger):
                # No "hp_metric" placeholder session in the run's event file: after_fit writes the run's session
                # with its real final metrics (``log_fit_hparams``); hparams.yaml is still written.
                logger._default_hp_metric = False
        check_callbacks_before_run(self.trainer, self.model)
        self._resolve_last_checkpoint(required=False)
        self._check_checkpoint()

    def before_validate(self) -> None:
        self._check_checkpoint()

    def before_test(self) -> None:
        self._resolve_last_checkpoint(required=True)
        self._check_checkpoint()

    def before_predict(self) -> None:
        self._check_checkpoint()

    def _check_checkpoint(self) -> None:
        path = self.config_init[self.subcommand].get("ckpt_path")
        if path not in (None, *LIGHTNING_CKPT_NAMES):
            check_parameter_shapes(path, self._load_checkpoint(path), self.model)
        self._checkpoint = None  # Lightning loads it again to restore: don't hold a second copy while training

    def _resolve_last_checkpoint(self, required: bool) -> None:
        """``--ckpt_path last``: the newest ``last.ckpt`` of any version of this run's log folder.

        Lightning only looks in the new run's own version folder, so on its own "last" never finds an
        interrupted run's checkpoint: fit would start over and test would test untrained weights.
        """
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") != "last":
            return
        found = find_last_checkpoint(self.trainer)
        if found is None and required:
            raise ValueError("--ckpt_path last: no last.ckpt in any version of this run's log folder; "
                             "pass the checkpoint's path instead")
        config["ckpt_path"] = found  # None when fitting: start from scratch

    def after_fit(self) -> None:
        self.log_fit_hparams()
        checkpoint = self.trainer.checkpoint_callback
        path = getattr(checkpoint, "last_model_path", "") or getattr(checkpoint, "best_model_path", "")
        rank_zero_info(f"Logs: {self.trainer.log_dir}  (view with: tensorboard --logdir lightning_logs)")
        if path:
            configs = self.config[self.subcommand].get("config") or []
            config = str(configs[0]) if len(configs) == 1 else "CONFIG"
            overrides = "".join(f" {shlex.quote(arg)}" for arg in command_overrides(getattr(self, "_args", [])))
            rank_zero_info(f"Checkpoint: {path}\nTest it with: dlbasics test --config {config}{overrides} "
                           f"--ckpt_path {path}")

    def log_fit_hparams(self) -> None:
        """Write the run's TensorBoard HParams session into ``<log_dir>/hparams`` of each TensorBoard logger: the
        model's and the data's settings flattened to plain values (``network.dropout: 0.3``, ``data.noise: 0.2``),
        the seed and config, and the last ``train/``/``val/`` values as ``final/...`` metrics."""
        if not self.trainer.is_global_zero:
            return
        config = self.config[self.subcommand].as_dict()
        files = [Path(str(path)).name for path in config.get("config") or []]
        hparams = {"config": ", ".join(files) or None, "seed": config.get("seed_everything"),
                   **trainer_hparams(self.trainer), **config_hparams(config["model"], config["data"])}
        for logger in self.trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                write_hparams(Path(logger.log_dir) / HPARAMS_FOLDER, hparams,
                              final_metrics(self.trainer.callback_metrics, logger), self.trainer.global_step)

    def after_test(self) -> None:
        rank_zero_info(f"Logs: {self.trainer.log_dir}  (view with: tensorboard --logdir lightning_logs)")


def command_overrides(args: list[str]) -> list[str]:
    """The arguments of a ``dlbasics fit`` command line other than its subcommand, ``--config`` and ``--ckpt_path``:
    what a ``dlbasics test`` of the same run must repeat (``--data.init_args.path my.csv``)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--config", "--ckpt_path"):
            skip = True
        elif not (arg in LIGHTNING_SUBCOMMANDS or arg.startswith(("--config=", "--ckpt_path="))):
            kept.append(arg)
    return kept


def check_callbacks_before_run(trainer: Trainer, model: LightningModule) -> None:
    """Call ``check_before_run(trainer, pl_module)`` of every callback that has one, before the run folder exists.

    A callback that can tell from the trainer and the model that the run cannot work (an activation swap after
    the last epoch) refuses it here, so a refused run leaves nothing behind.
    """
    for callback in trainer.callbacks:
        check = getattr(callback, "check_before_run", None)
        if callable(check):
            check(trainer, model)


def hide_lightning_noise() -> None:
    """Silence warnings Lightning raises on every run that a user can't act on."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Our datamodules return no validation loader on purpose when there is no validation data.
    warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
    # ``dlbasics`` hands its own arguments to LightningCLI (after the subcommand dispatch), on purpose.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    # Testing or resuming a checkpoint from another run folder: ModelCheckpoint's bookkeeping of that folder is
    # not carried over, which is what a user expects.
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
    banners = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, DropBanners) for f in banners.filters):
        banners.addFilter(DropBanners())


class DropBanners(logging.Filter):
    """Drop Lightning's per-run lines about hardware this run doesn't use and its advertising tip."""

    PREFIXES = ("GPU available: False", "TPU available: False", "HPU available: False", "💡 Tip:")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def cli_main(args: list[str] | None = None, run: bool = True, cli_class: type[DLBasicsCLI] = DLBasicsCLI,
             **kwargs: Any) -> DLBasicsCLI:
    """Run ``dlbasics fit|validate|test|predict``; ``args`` replaces ``sys.argv[1:]`` (for tests).

    With ``run=False`` the arguments are a config without a subcommand and nothing runs: the lessons build their
    runs this way, through the same parser and links as ``dlbasics fit``. ``cli_class`` and ``kwargs`` go to it.
    """
    hide_lightning_noise()
    return cli_class(
        System,
        TensorDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        # A 14-line layer table on every run; `--trainer.enable_model_summary true` brings it back.
        trainer_defaults={"enable_model_summary": False},
        args=args,
        run=run,
        **kwargs,
    )


def fit_main(args: list[str]) -> int:
    """``dlbasics fit|validate|test|predict ARGS``: the exit status. A bad argument raises ``ArgumentError`` (the
    ``dlbasics`` command prints it as one line) instead of printing the whole usage before it."""
    try:
        subcommands = {name: {"exit_on_error": False, "epilog": SETTINGS_HINT} for name in LIGHTNING_SUBCOMMANDS}
        cli_main(args, parser_kwargs={"exit_on_error": False, **subcommands})
    finally:
        release_process_group()
    return 0
