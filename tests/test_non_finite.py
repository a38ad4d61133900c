"""NonFiniteGuard: a NaN/inf loss or gradient stops training (or skips the step) before the optimizer applies it.

The first tests break a tiny module at a chosen step; the last ones run the real ``dlbasics fit`` on the L5 TinyNet
config (SGD) with lr 1000, whose weights grow until the loss overflows: the run must end with the guard's message,
not a wall of NaNs.
"""

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from reliability_probes import ROOT, scalars
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import NonFiniteError, NonFiniteGuard
from dlbasics.lightning_cli import cli_main

BATCHES_PER_EPOCH = 3


class Breakable(L.LightningModule):
    """A tiny classifier trained with Adam whose loss (or one gradient) turns non-finite at a chosen step.

    It keeps a copy of its weights at the start of every batch, keyed by the global step about to run.
    """

    def __init__(self, nan_loss_at: int | None = None, inf_grad_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        self.nan_loss_at, self.inf_grad_at = nan_loss_at, inf_grad_at
        self.weights_before: dict[int, list[torch.Tensor]] = {}
        self.steps_run = 0

    def training_step(self, batch, batch_idx):
        self.steps_run += 1
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        return loss * float("nan") if self.global_step == self.nan_loss_at else loss

    def on_train_batch_start(self, batch, batch_idx):
        self.weights_before[self.global_step] = [p.detach().clone() for p in self.parameters()]

    def on_after_backward(self):
        if self.global_step == self.inf_grad_at:
            self.net[2].weight.grad[0, 0] = float("inf")  # finite loss, one bad gradient

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


def loader() -> DataLoader:
    x = torch.randn(6 * BATCHES_PER_EPOCH, 2, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, (x.sum(1) > 0).long()), batch_size=6)


def params(model: L.LightningModule) -> list[torch.Tensor]:
    return [p.detach() for p in model.parameters()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_nan_loss_stops_before_the_bad_update_and_raises(tmp_path, make_trainer):
    model = Breakable(nan_loss_at=4)  # global step 4 = epoch 1, batch 1
    guard = NonFiniteGuard()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt")
    trainer = make_trainer(max_epochs=5, callbacks=[guard, checkpoint], enable_checkpointing=True)
    with pytest.raises(NonFiniteError) as error:
        trainer.fit(model, loader())

    message = str(error.value)
    assert message.startswith("NonFiniteGuard: at global step 4 (epoch 1, batch 1) loss is nan; non-finite "
                              "gradients in: net.0.weight, net.0.bias, net.2.weight, net.2.bias.")
    assert "not applied and training was stopped" in message
    # Step 4 ran its forward/backward but changed nothing; no later batch ran.
    assert model.steps_run == 5 and trainer.global_step == 5
    assert_same(params(model), model.weights_before[4])
    assert all(p.isfinite().all() for p in params(model))
    assert guard.history == [{"step": 4, "epoch": 1, "batch": 1, "what": "loss", "loss": pytest.approx(float("nan"),
                              nan_ok=True), "layers": ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"],
                              "action": "stop", "inputs": ""}]
    # The end-of-epoch checkpoint holds the clean weights and loads without unpickling code.
    state = torch.load(checkpoint.last_model_path or checkpoint.best_model_path, weights_only=True)
    assert all(t.isfinite().all() for t in state["state_dict"].values())
    assert state["callbacks"][guard.state_key]["history"][0]["step"] == 4


def test_bad_gradient_names_only_that_layer(make_trainer):
    model = Breakable(inf_grad_at=2)
    trainer = make_trainer(max_epochs=5, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteError, match=r"^NonFiniteGuard: at global step 2 \(epoch 0, batch 2\) "
                                             r"non-finite gradients in: net\.2\.weight\. "):
        trainer.fit(model, loader())
    assert trainer.global_step == 3 and model.steps_run == 3
    assert_same(params(model), model.weights_before[2])


def test_stop_without_raising_warns(make_trainer):
    model = Breakable(nan_loss_at=1)
    trainer = make_trainer(max_epochs=5, callbacks=[NonFiniteGuard(raise_error=False)])
    with pytest.warns(UserWarning, match=r"at global step 1 \(epoch 0, batch 1\) loss is nan"):
        trainer.fit(model, loader())
    assert trainer.global_step == 2
    assert_same(params(model), model.weights_before[1])


def test_stop_blocks_every_later_update_while_min_epochs_keeps_training(make_trainer):
    model = Breakable(nan_loss_at=1)
    trainer = make_trainer(max_epochs=5, min_epochs=2, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteError, match="global step 1"):
        trainer.fit(model, loader())
    assert model.steps_run == 2 * BATCHES_PER_EPOCH  # the loop ran on to min_epochs...
    assert_same(params(model), model.weights_before[1])  # ...but applied nothing after the bad step


def test_skip_drops_the_step_counts_it_and_continues(tmp_path, make_trainer):
    model = Breakable(nan_loss_at=4)
    guard = NonFiniteGuard(action="skip")
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = make_trainer(max_epochs=3, callbacks=[guard], logger=logger)
    with pytest.warns(UserWarning, match=r"global step 4 \(epoch 1, batch 1\) loss is nan.*skipped \(1 so far\)"):
        trainer.fit(model, loader())

    assert trainer.global_step == 3 * BATCHES_PER_EPOCH and model.steps_run == 3 * BATCHES_PER_EPOCH
    assert guard.skipped == 1 and [e["action"] for e in guard.history] == ["skip"]
    assert_same(model.weights_before[5], model.weights_before[4])  # step 4 changed nothing
    assert not torch.equal(model.weights_before[6][0], model.weights_before[5][0])  # step 5 trained again
    assert all(p.isfinite().all() for p in params(model))
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [(p.step, p.value) for p in events.Scalars("nonfinite/skipped")] == [(4, 1.0)]


def test_state_round_trips_through_weights_only_load(tmp_path):
    guard = NonFiniteGuard(action="skip")
    guard.skipped = 2
    guard.history = [{"step": 3, "epoch": 0, "batch": 3, "what": "gradients", "loss": None,
                      "layers": ["net.0.weight"], "action": "skip", "inputs": ""}]
    torch.save(guard.state_dict(), tmp_path / "state.pt")
    restored = NonFiniteGuard(action="skip")
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.skipped == 2 and restored.history == guard.history


def test_bad_action_raises():
    with pytest.raises(ValueError, match="action 'ignore' is not one of: stop, skip"):
        NonFiniteGuard(action="ignore")



class BatchNormed(L.LightningModule):
    """Linear -> BatchNorm1d -> ReLU -> Linear; the input of the batches in ``nan_input_at`` is NaN, so their forward
    writes NaN into the BatchNorm's running statistics. Keeps the buffers at the start of every batch."""

    def __init__(self, nan_input_at: tuple[int, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        self.nan_input_at, self.buffers_before, self.batches = nan_input_at, [], 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.batches += 1
        return F.cross_entropy(self.net(x * float("nan") if self.batches - 1 in self.nan_input_at else x), y)

    def on_train_batch_start(self, batch, batch_idx):
        self.buffers_before.append({n: b.clone() for n, b in self.named_buffers()})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def buffers(model: L.LightningModule) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers()}


def assert_buffers_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_skip_restores_batch_norm_statistics_of_the_whole_accumulation_window(make_trainer):
    # 3 batches per epoch in windows of 2: (0, 1), (2) | (3, 4), (5). Batch 4 is the second of the window (3, 4).
    model = BatchNormed(nan_input_at=(4,))
    trainer = make_trainer(max_epochs=2, accumulate_grad_batches=2, callbacks=[NonFiniteGuard(action="skip")])
    with pytest.warns(UserWarning, match=r"global step 2 \(epoch 1, batch 1\) loss is nan.*skipped"):
        trainer.fit(model, loader())
    # After the skipped window the statistics are those from before it, NaN-free; batch 3's clean forward is
    # undone with it, as its step was not applied either.
    assert_buffers_equal(model.buffers_before[5], model.buffers_before[3])
    assert not torch.equal(model.buffers_before[3]["net.1.running_mean"], model.buffers_before[2]["net.1.running_mean"])
    assert model.buffers_before[5]["net.1.num_batches_tracked"] == 3  # batches 0, 1 and 2
    assert all(b.isfinite().all() for b in model.buffers())  # batch 5 trained again
    model.eval()
    assert model.net(torch.randn(4, 2)).isfinite().all()


def test_stop_restores_batch_norm_statistics_also_of_the_steps_after_it(make_trainer):
    model = BatchNormed(nan_input_at=(1, 2))  # stops at batch 1; batch 2, run while min_epochs is not reached, too
    trainer = make_trainer(max_epochs=5, min_epochs=2, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteError, match="global step 1"):
        trainer.fit(model, loader())
    assert model.batches == 2 * BATCHES_PER_EPOCH
    assert_buffers_equal(buffers(model), model.buffers_before[1])


# The real command: an exploding loss.

MONITOR = ["--trainer.callbacks+=dlbasics.callbacks.GradientFlowMonitor", "--trainer.callbacks.plot_every_n_epochs=0"]


def explode(tmp_path: Path, *extra: str) -> tuple[str, dict]:
    """Fit until the guard (every config has one) stops; return its message and every TensorBoard scalar."""
    with pytest.raises(NonFiniteError) as error:
        cli_main(["fit", "--config", str(ROOT / "configs/sine_tinynet.yaml"),
                  "--model.init_args.optimizer.init_args.lr", "1000", "--trainer.max_epochs", "50",
                  "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                  "--trainer.logger.init_args.save_dir", str(tmp_path), *extra])
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


def test_a_non_finite_input_batch_is_named_as_the_cause(tmp_path):
    from dlbasics.models import Regressor

    x = torch.randn(16, 1)
    x[3, 0] = float("nan")
    loader = DataLoader(TensorDataset(x, torch.randn(16, 1)), batch_size=16)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[NonFiniteGuard()], default_root_dir=tmp_path)
    with pytest.raises(NonFiniteError, match=r"the cause is the input batch, which holds 1 NaN and 0 inf values in "
                                             r"batch\[0\]: check the data"):
        trainer.fit(Regressor(input_shape=(1,), num_outputs=1), loader)
