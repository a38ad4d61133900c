"""DDP on two CPU processes, through the real ``dlbasics`` command with ``ddp`` and ``ddp_spawn``.

Each process writes what it holds at the end (``reliability_probes.RankReport``), and the test evaluates the saved
checkpoint on the whole split in one process, so the logged metrics can be checked against it. Four runs:
moons ``fit`` (ddp) and ``test`` (ddp_spawn, with the confusion matrix), real MNIST ``fit`` (ddp_spawn, the CNN)
and ``test`` (ddp). Without the MNIST files in ``data/`` the MNIST runs fetch them there first.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from reliability_probes import ROOT, child_environment, scalars, tensor_digest
from torch.nn import functional as F

from dlbasics.data import MNISTDataModule, MoonsDataModule
from dlbasics.models import Classifier

pytestmark = pytest.mark.slow

MOONS_SAMPLES = 404  # 101 test points, so the two evaluation shards differ in size (51 and 50)
REPORT = {"class_path": "reliability_probes.RankReport", "init_args": {"folder": "reports"}}
LAST = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}


def dlbasics(folder: Path, *args: str, timeout: int = 300) -> tuple[int, str]:
    """Run the ``dlbasics`` command in ``folder`` on two CPU processes; return its status and output.

    On a timeout (a deadlocked collective) the whole process group goes, the DDP workers included.
    """
    command = [str(Path(sys.executable).parent / "dlbasics"), *args, "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.enable_progress_bar", "false"]
    process = subprocess.Popen(command, cwd=folder, env=child_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"dlbasics {args[0]} did not finish in {timeout} s:\n{output[-3000:]}")
    return process.returncode, output


def write(folder: Path, name: str, settings: dict) -> str:
    (folder / name).write_text(yaml.safe_dump(settings))
    return str(folder / name)


def reports(folder: Path, stage: str) -> list[dict]:
    return [json.loads((folder / "reports" / f"rank{rank}_{stage}.json").read_text()) for rank in (0, 1)]


def evaluate(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Loss, accuracy and confusion matrix of ``model`` on a whole split, in this one process."""
    with torch.no_grad():
        scores = model.eval()(x)
    pred = scores.argmax(1)
    confusion = torch.bincount(y * scores.shape[1] + pred, minlength=scores.shape[1] ** 2).reshape(scores.shape[1], -1)
    return F.cross_entropy(scores, y).item(), (pred == y).float().mean().item(), confusion


def assert_one_run_folder_logged_once(folder: Path, name: str) -> dict:
    """One version folder with one events file, and no scalar logged twice at a step; returns the scalars."""
    (run,) = folder.glob(f"lightning_logs/{name}/version_*")
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    logged = scalars(run)
    for tag, points in logged.items():
        steps = [step for step, _ in points]
        # `epoch` too: Lightning adds it to the validation's and the training epoch's writes at the same step, and the
        # configs' BufferedTensorBoardLogger writes the first.
        assert len(steps) == len(set(steps)), tag
    return logged


# Moons: fit with ddp, test with ddp_spawn.

@pytest.fixture(scope="module")
def moons_fit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp_moons")
    extra = write(folder, "ddp.yaml", {
        "trainer": {"max_epochs": 2, "log_every_n_steps": 1, "callbacks": [
            LAST,
            {"class_path": "dlbasics.callbacks.ActivationSwap",
             "init_args": {"schedule": [{"at_epoch": 1, "from_kind": "relu", "to": "tanh"}]}},
            {"class_path": "dlbasics.callbacks.GradientFlowMonitor",
             "init_args": {"log_every_n_steps": 1, "plot_every_n_epochs": 0}},
            {"class_path": "dlbasics.callbacks.ActivationStats", "init_args": {"plot": False}},
            {"class_path": "dlbasics.callbacks.RNGStateCheckpoint"},
            REPORT]},
        "data": {"init_args": {"n_samples": MOONS_SAMPLES}}})
    status, output = dlbasics(folder, "fit", "--config", str(ROOT / "configs/moons_mlp.yaml"), "--config", extra,
                              "--trainer.strategy", "ddp")
    assert status == 0, output[-3000:]
    checkpoint = next(folder.glob("lightning_logs/moons_mlp/version_*/checkpoints/last.ckpt"))
    return folder, output, checkpoint


def test_moons_ranks_end_with_identical_weights_and_the_checkpoint_holds_them(moons_fit):
    folder, _, checkpoint = moons_fit
    rank0, rank1 = reports(folder, "fit")
    assert (rank0["world_size"], rank0["global_step"], rank1["global_step"]) == (2, 6, 6)  # 3 padded batches a rank
    assert rank0["parameters"] == rank1["parameters"] and rank0["buffers"] == rank1["buffers"]  # BatchNorm too
    model = Classifier.load_from_checkpoint(checkpoint, weights_only=True)
    assert tensor_digest(dict(model.named_parameters())) == rank0["parameters"]


def test_moons_validation_metrics_cover_the_whole_split(moons_fit):
    folder, _, checkpoint = moons_fit
    rank0, rank1 = reports(folder, "fit")
    assert (rank0["samples"], rank1["samples"]) == (51, 50)  # disjoint shards of the 101 points
    loss, acc, _ = evaluate(Classifier.load_from_checkpoint(checkpoint, weights_only=True),
                            *MoonsDataModule(n_samples=MOONS_SAMPLES).split("test"))
    for report in (rank0, rank1):
        assert report["metrics"]["val/loss"] == pytest.approx(loss, rel=1e-5)
        assert report["metrics"]["val/acc"] == pytest.approx(acc, abs=1e-6)


def test_callbacks_log_once_not_once_per_rank(moons_fit):
    folder, output, _ = moons_fit
    logged = assert_one_run_folder_logged_once(folder, "moons_mlp")
    assert [step for step, _ in logged["activation/swap"]] == [3]
    assert len(logged["grad_step/linear1 (network.layers.0)/mean_abs"]) == 6  # every step, once
    assert len(logged["act/act1 (network.layers.2)/mean"]) == 2  # every epoch, once
    assert len(re.findall(r"ActivationSwap: epoch 1, step 3: relu -> tanh", output)) == 1


def test_moons_test_metrics_and_confusion_matrix_count_every_test_point_once(moons_fit):
    folder, _, checkpoint = moons_fit
    extra = write(folder, "test.yaml", {"trainer": {"callbacks": [
        {"class_path": "dlbasics.callbacks.ConfusionMatrix"}, REPORT]}})
    status, output = dlbasics(folder, "test", "--config", str(ROOT / "configs/moons_mlp.yaml"), "--config", extra,
                              "--data.init_args.n_samples", str(MOONS_SAMPLES), "--trainer.strategy", "ddp_spawn",
                              "--ckpt_path", str(checkpoint), timeout=120)
    assert status == 0, output[-3000:]
    rank0, rank1 = reports(folder, "test")
    assert (rank0["samples"], rank1["samples"]) == (51, 50)
    loss, acc, confusion = evaluate(Classifier.load_from_checkpoint(checkpoint, weights_only=True),
                                    *MoonsDataModule(n_samples=MOONS_SAMPLES).split("test"))
    for report in (rank0, rank1):
        assert report["metrics"]["test/loss"] == pytest.approx(loss, rel=1e-5)
        assert report["metrics"]["test/acc"] == pytest.approx(acc, abs=1e-6)
        assert report["confusion"] == [confusion.tolist()]  # sums to 101: every point once


# MNIST (the real files, the CNN): fit with ddp_spawn, test with ddp.

@pytest.fixture(scope="module")
def mnist_fit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp_mnist")
    extra = write(folder, "ddp.yaml", {
        "trainer": {"max_epochs": 1, "limit_train_batches": 3, "limit_test_batches": 2, "callbacks": [LAST, REPORT]},
        "data": {"init_args": {"data_dir": str(ROOT / "data"), "val_size": 1000, "eval_batch_size": 250}}})
    status, output = dlbasics(folder, "fit", "--config", str(ROOT / "configs/mnist_cnn.yaml"), "--config", extra,
                              "--trainer.strategy", "ddp_spawn")
    assert status == 0, output[-3000:]
    checkpoint = next(folder.glob("lightning_logs/mnist_cnn/version_*/checkpoints/last.ckpt"))
    return folder, output, checkpoint, extra


def mnist_split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    dm = MNISTDataModule(data_dir=ROOT / "data", val_size=1000)
    x, y = dm.split(name)
    return dm.to_float(x), y


def test_mnist_cnn_ranks_agree_and_validate_on_the_whole_split(mnist_fit):
    folder, _, checkpoint, _ = mnist_fit
    rank0, rank1 = reports(folder, "fit")
    assert (rank0["global_step"], rank1["global_step"]) == (3, 3)
    assert rank0["parameters"] == rank1["parameters"]
    assert (rank0["samples"], rank1["samples"]) == (500, 500)
    model = Classifier.load_from_checkpoint(checkpoint, weights_only=True)
    assert tensor_digest(dict(model.named_parameters())) == rank0["parameters"]
    loss, acc, _ = evaluate(model, *mnist_split("val"))
    assert rank0["metrics"]["val/loss"] == pytest.approx(loss, rel=1e-5)
    assert rank0["metrics"]["val/acc"] == pytest.approx(acc, abs=1e-6)
    assert_one_run_folder_logged_once(folder, "mnist_cnn")


def test_mnist_ddp_spawn_prints_the_run_folder_it_wrote(mnist_fit):
    folder, output, checkpoint, _ = mnist_fit
    (printed,) = re.findall(r"Logs: (\S+)", output)
    assert Path(folder, printed) == checkpoint.parent.parent


def test_mnist_test_metrics_cover_every_rank_shard_with_ddp(mnist_fit):
    folder, _, checkpoint, extra = mnist_fit
    status, output = dlbasics(folder, "test", "--config", str(ROOT / "configs/mnist_cnn.yaml"), "--config", extra,
                              "--trainer.strategy", "ddp", "--ckpt_path", str(checkpoint))
    assert status == 0, output[-3000:]
    rank0, rank1 = reports(folder, "test")
    assert (rank0["samples"], rank1["samples"]) == (500, 500)  # 2 batches of 250 each: the first 1000 images
    x, y = mnist_split("test")
    loss, acc, _ = evaluate(Classifier.load_from_checkpoint(checkpoint, weights_only=True), x[:1000], y[:1000])
    for report in (rank0, rank1):
        assert report["metrics"]["test/loss"] == pytest.approx(loss, rel=1e-5)
        assert report["metrics"]["test/acc"] == pytest.approx(acc, abs=1e-6)
