"""What ``--ckpt_path last`` should resume: the newest ``last.ckpt`` of any version of the run's log folder."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


def find_last_checkpoint(trainer: Trainer) -> str | None:
    """The newest ``last*.ckpt`` in the checkpoint folder of any version of the trainer's logger, or None.

    Lightning looks for ``ckpt_path="last"`` only in the checkpoint folder of the run being started. With a
    versioned logger (``lightning_logs/<name>/version_N/checkpoints``, the ``dlbasics`` layout) a new run is a new
    version, so the ``last.ckpt`` of an interrupted run is never found and training starts over with only a
    warning. This also looks in ``<save_dir>/<name>/*/checkpoints`` and in every ``ModelCheckpoint(dirpath=...)``.
    Call it before fitting starts and pass the result as ``ckpt_path``.

    Args:
        trainer: the trainer about to fit (or test); only its logger, callbacks and ``default_root_dir`` are read.
    """
    folders = [Path(callback.dirpath) for callback in trainer.checkpoint_callbacks
               if isinstance(callback, ModelCheckpoint) and callback.dirpath]
    if trainer.loggers:  # where ModelCheckpoint puts them by default: <save_dir>/<name>/<version>/checkpoints
        logger = trainer.loggers[0]
        folders += Path(logger.save_dir or trainer.default_root_dir, str(logger.name)).glob("*/checkpoints")
    else:
        folders.append(Path(trainer.default_root_dir, "checkpoints"))
    last = ModelCheckpoint.CHECKPOINT_NAME_LAST
    found = [path for folder in folders for path in folder.glob(f"{last}*{ModelCheckpoint.FILE_EXTENSION}")]
    return str(max(found, key=lambda path: path.stat().st_mtime)) if found else None
