"""A run stopped at a checkpoint and resumed with ``--ckpt_path`` ends where the uninterrupted run ends, bit for bit.

The real ``dlbasics fit`` on the L4 dropout config (dropout 0.5, so every step draws random masks), in 4 shuffled
batches per epoch, with an activation swap at epoch 3 and the gradient monitor logging every step.
"""

import os
import signal
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from reliability_probes import ROOT, scalars

from dlbasics.callbacks import ActivationSwap, GradientFlowMonitor
from dlbasics.data import MoonsDataModule
from dlbasics.lightning_cli import cli_main
from dlbasics.models import Classifier
from dlbasics.models.components import MLP
from dlbasics.resume import find_last_checkpoint

CONFIG = ROOT / "configs/toy2d_dropout.yaml"
EPOCHS, SWAP_AT = 6, 3


def callbacks_config(folder: Path, rng_state: bool = True) -> Path:
    """The callbacks of these runs: a checkpoint every epoch, the swap, the gradient monitor, the RNG state."""
    callbacks = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"save_top_k": -1, "every_n_epochs": 1, "filename": "{epoch}", "save_last": True}},
        {"class_path": "dlbasics.callbacks.ActivationSwap",
         "init_args": {"schedule": [{"at_epoch": SWAP_AT, "from_kind": "relu", "to": "tanh"}]}},
        {"class_path": "dlbasics.callbacks.GradientFlowMonitor",
         "init_args": {"log_every_n_steps": 1, "plot_every_n_epochs": 0}},
    ]
    if rng_state:
        callbacks.append({"class_path": "dlbasics.callbacks.RNGStateCheckpoint"})
    path = folder / f"callbacks_rng{int(rng_state)}.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return path


def fit(folder: Path, name: str, *extra: str, rng_state: bool = True):
    return cli_main(["fit", "--config", str(CONFIG), "--config", str(callbacks_config(folder, rng_state)),
                     "--data.init_args.batch_size", "35",  # 140 training points: 4 shuffled batches an epoch
                     "--trainer.max_epochs", str(EPOCHS), "--trainer.enable_progress_bar", "false",
                     "--trainer.enable_model_summary", "false", "--trainer.logger.init_args.save_dir", str(folder),
                     "--trainer.logger.init_args.name", name, *extra])


def checkpoint(folder: Path, name: str, file: str) -> str:
    return str(folder / name / "version_0" / "checkpoints" / file)


def callback(cli, kind: type):
    (found,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, kind)]
    return found


def assert_same_run(full, resumed) -> None:
    """Same weights, metrics, callback histories and, for every step the resumed run logged, TensorBoard values."""
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert full.trainer.callback_metrics.keys() == resumed.trainer.callback_metrics.keys()
    for key, value in full.trainer.callback_metrics.items():
        assert torch.equal(value, resumed.trainer.callback_metrics[key]), key
    assert callback(resumed, GradientFlowMonitor).history == callback(full, GradientFlowMonitor).history
    assert callback(resumed, ActivationSwap).history == callback(full, ActivationSwap).history
    full_scalars, resumed_scalars = scalars(full.trainer.log_dir), scalars(resumed.trainer.log_dir)
    assert resumed_scalars and resumed_scalars.keys() <= full_scalars.keys()
    for tag, points in resumed_scalars.items():
        by_step = dict(full_scalars[tag])
        assert all(by_step[step] == value for step, value in points), tag


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted runs, with and without the RNG state in the checkpoints."""
    folder = tmp_path_factory.mktemp("resume")
    return folder, fit(folder, "full"), fit(folder, "full_no_rng", rng_state=False)


@pytest.mark.parametrize("stop_after_epoch", [1, 4], ids=["before_swap", "after_swap"])
def test_resumed_run_ends_bitwise_equal(runs, stop_after_epoch):
    folder, full, _ = runs
    path = checkpoint(folder, "full", f"epoch={stop_after_epoch}.ckpt")
    resumed = fit(folder, f"resumed{stop_after_epoch}", "--ckpt_path", path)
    assert resumed.trainer.ckpt_path == path
    kinds = {type(m).__name__ for m in resumed.model.modules()} & {"ReLU", "Tanh"}
    assert kinds == {"Tanh"}  # the swap happened (after_swap: re-applied from the checkpoint)
    assert_same_run(full, resumed)


def test_without_the_rng_state_dropout_makes_a_resumed_run_diverge(runs):
    """Why RNGStateCheckpoint exists: Lightning's checkpoints hold no generator state."""
    folder, _, full = runs
    resumed = fit(folder, "resumed_no_rng", "--ckpt_path", checkpoint(folder, "full_no_rng", "epoch=1.ckpt"),
                  rng_state=False)
    assert not torch.equal(full.model.network.layers[0].weight, resumed.model.network.layers[0].weight)


def interrupt(folder: Path, name: str, at_epoch: int) -> None:
    """A run stopped by Ctrl+C when epoch ``at_epoch`` starts (the epochs before it are checkpointed)."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            fit(folder, name, "--trainer.callbacks+=reliability_probes.InterruptAt",
                "--trainer.callbacks.epoch", str(at_epoch))
    finally:
        signal.signal(signal.SIGINT, previous)  # Lightning ignores further Ctrl+C after catching one
    assert exit_info.value.code == 1


def test_interrupted_run_resumes_from_its_last_checkpoint(runs):
    folder, full, _ = runs
    interrupt(folder, "interrupted", at_epoch=4)
    # What the resumed run's trainer sees: the same logger name, a new version folder.
    trainer = L.Trainer(logger=TensorBoardLogger(folder, name="interrupted"), default_root_dir=folder)
    last = find_last_checkpoint(trainer)
    assert last == checkpoint(folder, "interrupted", "last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] == 3
    resumed = fit(folder, "interrupted", "--ckpt_path", last)
    assert Path(resumed.trainer.log_dir).name == "version_1" and resumed.trainer.ckpt_path == last
    assert_same_run(full, resumed)


def test_ckpt_path_last_resumes_an_interrupted_run(runs):
    folder, full, _ = runs
    interrupt(folder, "interrupted_last", at_epoch=4)
    resumed = fit(folder, "interrupted_last", "--ckpt_path", "last")
    # Training from scratch would end with the same weights (the run is deterministic): check that it resumed.
    assert resumed.trainer.ckpt_path == checkpoint(folder, "interrupted_last", "last.ckpt")
    assert_same_run(full, resumed)


def test_dlbasics_test_with_ckpt_path_last_tests_the_last_checkpoint(runs):
    folder, _, _ = runs
    tested = cli_main(["test", "--config", str(CONFIG), "--data.init_args.test_fraction", "0.1",
                       "--trainer.logger.init_args.save_dir", str(folder), "--trainer.logger.init_args.name", "full",
                       "--trainer.enable_progress_bar", "false", "--ckpt_path", "last"])
    assert tested.trainer.ckpt_path == checkpoint(folder, "full", "last.ckpt")


def test_find_last_checkpoint_takes_the_newest_of_every_version_and_explicit_folder(tmp_path):
    def touch(path: Path, mtime: int) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (mtime, mtime))
        return path

    for version, mtime in (("version_0", 100), ("version_1", 300), ("version_2", 200)):
        touch(tmp_path / "run" / version / "checkpoints" / "last.ckpt", mtime)
    touch(tmp_path / "run" / "version_2" / "checkpoints" / "epoch=3.ckpt", 400)  # not a last checkpoint
    trainer = L.Trainer(logger=TensorBoardLogger(tmp_path, name="run"), default_root_dir=tmp_path)
    assert find_last_checkpoint(trainer) == str(tmp_path / "run" / "version_1" / "checkpoints" / "last.ckpt")
    explicit = touch(tmp_path / "explicit" / "last-v1.ckpt", 500)
    trainer = L.Trainer(logger=TensorBoardLogger(tmp_path, name="run"), default_root_dir=tmp_path,
                        callbacks=[ModelCheckpoint(dirpath=explicit.parent)])
    assert find_last_checkpoint(trainer) == str(explicit)
    assert find_last_checkpoint(L.Trainer(logger=TensorBoardLogger(tmp_path, name="other"))) is None


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    from dlbasics.callbacks import RNGStateCheckpoint

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    saved = RNGStateCheckpoint()
    torch.save(saved.state_dict(), tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restored = RNGStateCheckpoint()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    torch.rand(5), np.random.rand(5), random.random()  # anything drawn between loading and training...
    restored.on_train_epoch_start(None, None)  # ...is undone when the first epoch starts
    drawn = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(drawn[0], expected[0]) and (drawn[1] == expected[1]).all() and drawn[2] == expected[2]
    restored.on_train_batch_start(None, None, None, 0)  # restored once only
    assert not torch.equal(torch.rand(3), expected[0])


# A Trainer built in Python, no CLI: the datamodule's batch order depends only on (seed, epoch).
def fit_in_python(tmp_path, max_epochs, ckpt_path=None, checkpoint=None):
    L.seed_everything(0)
    model = Classifier(optimizer=partial(torch.optim.Adam, lr=0.01), network=partial(MLP, hidden_sizes=[16, 16]))
    callbacks = [checkpoint] if checkpoint else []
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=bool(checkpoint), callbacks=callbacks,
                        default_root_dir=tmp_path)
    trainer.fit(model, MoonsDataModule(n_samples=400, batch_size=32, seed=1), ckpt_path=ckpt_path)
    return model


def test_resumed_run_sees_the_same_batches_and_ends_with_the_same_weights(tmp_path):
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    full = fit_in_python(tmp_path, 4, checkpoint=every_epoch)
    epoch2 = next((tmp_path / "ckpt").glob("epoch=1-*.ckpt"))  # saved at the end of the 2nd epoch
    resumed = fit_in_python(tmp_path, 4, ckpt_path=epoch2)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
