"""What the reliability tests share: scaled-down copies of the real configs, TensorBoard reading, and test-only
callbacks added to real ``dlbasics`` runs.

The callbacks are given to the CLI as ``--trainer.callbacks+=reliability_probes.<Name>`` or in a YAML file;
pytest puts ``tests/`` on ``sys.path``, and subprocesses find this module through ``PYTHONPATH=tests``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]

# What a DDP launcher tells the processes it starts. A child that inherits them believes it is one of those processes.
LAUNCHER_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GLOBAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                      "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def child_environment() -> dict[str, str]:
    """The environment for a test's ``dlbasics`` subprocess: this one without DDP launcher variables, with ``tests/``
    on ``PYTHONPATH`` so the subprocess can import this module."""
    env = {key: value for key, value in os.environ.items() if key not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    return env
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def scaled_config(config: Path, folder: Path, max_epochs: int = 2) -> Path:
    """A copy of a real config for tests, written in ``folder``: ``max_epochs`` epochs, logs under
    ``folder/lightning_logs``, and every ``ActivationSwap`` moved to epoch/step 1 so that it still happens."""
    settings = yaml.safe_load(config.read_text())
    trainer = settings.setdefault("trainer", {})
    trainer["max_epochs"] = max_epochs
    trainer["enable_progress_bar"] = False
    trainer["logger"]["init_args"]["save_dir"] = str(folder / "lightning_logs")
    for callback in trainer.get("callbacks") or []:
        if callback["class_path"].endswith("ActivationSwap"):
            for swap in callback["init_args"]["schedule"]:
                for when in ("at_epoch", "at_step"):
                    if swap.get(when) is not None:
                        swap[when] = min(swap[when], 1)
    path = folder / config.name
    path.write_text(yaml.safe_dump(settings))
    return path


def scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar of a run folder: ``{tag: [(step, value), ...]}`` in the order written."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the names and exact bytes of ``tensors``: equal digests mean bitwise-equal tensors."""
    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class InterruptAt(Callback):
    """Press Ctrl+C (raise KeyboardInterrupt) when training reaches ``epoch``, as a user stopping a run would."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


class RankReport(Callback):
    """Each process writes ``<folder>/rank<r>_<stage>.json``: weight digests, metrics and the samples it evaluated.

    Args:
        folder: where the reports go.
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.samples = {"validate": 0, "test": 0}

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self.samples["validate"] += len(batch[0])

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.samples["validate"] = 0  # the report shows the last validation epoch

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self.samples["test"] += len(batch[0])

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "fit", self.samples["validate"])

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test", self.samples["test"])

    def _write(self, trainer: Trainer, pl_module: LightningModule, stage: str, samples: int) -> None:
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "parameters": tensor_digest(dict(pl_module.named_parameters())),
            "buffers": tensor_digest(dict(pl_module.named_buffers())),
            "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()},
            "samples": samples,
            "confusion": [cb.matrix.tolist() for cb in trainer.callbacks if type(cb).__name__ == "ConfusionMatrix"
                          and cb.matrix is not None],
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}_{stage}.json").write_text(json.dumps(report))


class DtypeRecorder(TorchDispatchMode):
    """Records the dtype of every tensor that goes into or comes out of an ATen op, with the op's name."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[torch.dtype, set[str]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (the mode protocol)
        out = func(*args, **(kwargs or {}))
        for value in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(value, torch.Tensor):
                self.seen.setdefault(value.dtype, set()).add(str(func))
        return out


class RecordDtypes(Callback):
    """Runs the whole training loop, from ``on_train_start`` to ``on_train_end``, in a ``DtypeRecorder``.

    That is every batch's transfer, forward, loss, metrics, backward and optimizer step, the validation epochs,
    the epoch-end metric computation and logging, and every other callback's hooks in between; the data set-up
    and the sanity check come before. ``recorder.seen`` maps each dtype that appeared to the ops that used it.
    """

    def __init__(self) -> None:
        self.recorder = DtypeRecorder()
        self.batches = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.recorder.__enter__()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self.batches += 1

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.recorder.__exit__(None, None, None)


def config_network(config: str, args: list[str]) -> torch.nn.Module:
    """The network ``dlbasics fit --config configs/<config> <args>`` would train, built by the same parser."""
    from dlbasics.lightning_cli import cli_main

    return cli_main(["--config", str(ROOT / "configs" / config), *args], run=False).model.network
