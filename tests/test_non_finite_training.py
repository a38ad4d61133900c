"""A learning rate that makes the loss explode ends the run with NonFiniteGuard's message, not a wall of NaNs.

The real ``dlbasics fit`` on the L5 TinyNet config (SGD) with lr 1000: the weights grow until the loss overflows.
"""

import math
from pathlib import Path

import pytest
import torch
from reliability_probes import ROOT, scalars

from dlbasics.callbacks import NonFiniteError
from dlbasics.cli import cli_main

GUARD = "--trainer.callbacks+=dlbasics.callbacks.NonFiniteGuard"
MONITOR = ["--trainer.callbacks+=dlbasics.callbacks.GradientFlowMonitor", "--trainer.callbacks.plot_every_n_epochs=0"]


def explode(tmp_path: Path, *extra: str) -> tuple[str, dict]:
    """Fit until the guard stops; return its message and every TensorBoard scalar of the run."""
    with pytest.raises(NonFiniteError) as error:
        cli_main(["fit", "--config", str(ROOT / "configs/sine_tinynet.yaml"),
                  "--model.init_args.optimizer.init_args.lr", "1000", "--trainer.max_epochs", "50",
                  "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                  "--trainer.logger.init_args.save_dir", str(tmp_path), GUARD, *extra])
    (log_dir,) = tmp_path.glob("sine_tinynet/version_*")
    return str(error.value), scalars(log_dir)


def nan_points(logged: dict) -> dict:
    return {tag: [(step, v) for step, v in points if math.isnan(v)] for tag, points in logged.items()
            if any(math.isnan(v) for _, v in points)}


def test_exploding_loss_stops_with_the_guard_message_and_no_nan_in_tensorboard(tmp_path):
    message, logged = explode(tmp_path)
    assert message.startswith("NonFiniteGuard: at global step 5 (epoch 5, batch 0) loss is inf")
    assert message.endswith("training was stopped; the weights are from before it.")
    assert max(step for points in logged.values() for step, _ in points) <= 6  # nothing logged after the stop
    assert nan_points(logged) == {}
    last = torch.load(next(tmp_path.glob("sine_tinynet/version_*/checkpoints/last.ckpt")), weights_only=True)
    assert all(t.isfinite().all() for t in last["state_dict"].values())


def test_with_the_gradient_monitor_there_is_no_nan_in_tensorboard_either(tmp_path):
    message, logged = explode(tmp_path, *MONITOR)
    assert message.startswith("NonFiniteGuard: at global step 5")
    assert nan_points(logged) == {}
