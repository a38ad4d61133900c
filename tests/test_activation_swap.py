import json

import lightning as L
import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.activations import ACTIVATIONS
from dlbasics.callbacks import ActivationStats, ActivationSwap, Swap
from dlbasics.callbacks.diagnostics._activation_layers import find_activations
from dlbasics.models.components.mlp import MLP


class TinyClassifier(L.LightningModule):
    """A LightningModule that is not one of ours: the callback must find the activations by itself."""

    def __init__(self, net: nn.Module, lr: float = 0.08) -> None:
        super().__init__()
        self.net, self.lr, self.losses = net, lr, []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.losses.append(loss.detach())
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def linear_task(n=100, batch_size=None):
    """L1's linear task: x ~ N(0, I), label x0 + x1 > 0; full batch unless batch_size is given."""
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, (x.sum(1) > 0).long()), batch_size=batch_size or n)


def tiny(activation="tanh", hidden=(8, 8), seed=0):
    L.seed_everything(seed, verbose=False)
    return TinyClassifier(MLP((2,), 2, list(hidden), activation))


def kinds(module):
    return [kind for _, _, kind in find_activations(module)]


class RecordForwardKinds(Callback):
    """Records (epoch, step, activation kinds) at every training forward, from a pre-hook on the root net."""

    def __init__(self):
        self.seen, self._handle = [], None

    def on_fit_start(self, trainer, pl_module):
        def record(net, args):
            if pl_module.training:
                self.seen.append((trainer.current_epoch, trainer.global_step, kinds(net)))
        self._handle = pl_module.net.register_forward_pre_hook(record)

    def on_fit_end(self, trainer, pl_module):
        self._handle.remove()


def test_swapped_network_equals_fresh_mlp_with_new_activation(make_trainer):
    model = tiny("tanh")
    make_trainer(max_epochs=3, callbacks=[ActivationSwap([Swap("relu", at_epoch=1)])]).fit(model, linear_task())
    assert kinds(model) == ["relu", "relu"]
    fresh = MLP((2,), 2, [8, 8], "relu")
    fresh.load_state_dict(model.net.state_dict())
    x = torch.randn(50, 2)
    model.eval()
    assert torch.equal(model(x), fresh(x))


def test_epoch_swap_timing(make_trainer):
    model, recorder = tiny("tanh"), RecordForwardKinds()
    swap = ActivationSwap([{"to": "relu", "at_epoch": 2, "from_kind": "tanh"}])
    make_trainer(max_epochs=4, callbacks=[swap, recorder]).fit(model, linear_task())
    assert [(epoch, k) for epoch, _, k in recorder.seen] == [
        (0, ["tanh", "tanh"]), (1, ["tanh", "tanh"]), (2, ["relu", "relu"]), (3, ["relu", "relu"])]
    assert swap.history == [{"swap": 0, "epoch": 2, "step": 2, "from": ["tanh"], "to": "relu",
                             "layers": ["net.layers.1", "net.layers.3"]}]


def test_step_swaps_and_pattern(make_trainer):
    model, recorder = tiny("tanh"), RecordForwardKinds()
    schedule = [Swap("relu", at_step=5, pattern=r"layers\.1$"), Swap("gelu", at_step=6, from_kind="relu")]
    trainer = make_trainer(max_epochs=2, callbacks=[ActivationSwap(schedule), recorder])
    trainer.fit(model, linear_task(batch_size=25))  # 4 batches per epoch
    by_step = {step: k for _, step, k in recorder.seen}
    assert [by_step[s] for s in (4, 5, 6, 7)] == [
        ["tanh", "tanh"], ["relu", "tanh"], ["gelu", "tanh"], ["gelu", "tanh"]]


def test_swap_logged_to_tensorboard_and_history(make_trainer, tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    swap = ActivationSwap([Swap("relu", at_epoch=2)])
    make_trainer(max_epochs=3, logger=logger, callbacks=[swap]).fit(tiny("tanh"), linear_task())
    events = EventAccumulator(logger.log_dir).Reload()
    (scalar,) = events.Scalars("activation/swap")
    assert (scalar.step, scalar.value) == (2, 1.0)
    (text,) = events.Tensors("activation/swap/text_summary")
    assert text.step == 2
    assert text.tensor_proto.string_val[0].decode() == "epoch 2, step 2: tanh -> relu in net.layers.1, net.layers.3"
    assert swap.history[0]["layers"] == ["net.layers.1", "net.layers.3"]


def test_hooks_on_a_replaced_module_move_to_its_replacement(make_trainer):
    model, calls = tiny("tanh"), []
    handle = model.net.layers[1].register_forward_hook(lambda m, a, out: calls.append(type(m).__name__))
    make_trainer(max_epochs=2, callbacks=[ActivationSwap([Swap("relu", at_epoch=1)])]).fit(model, linear_task())
    assert calls == ["Tanh", "ReLU"]
    handle.remove()
    assert not model.net.layers[1]._forward_hooks


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ([], "at least one swap"),
        ([Swap("rleu", at_epoch=1)], "schedule[0].to 'rleu' is not one of: sigmoid, tanh, relu"),
        ([Swap("relu", at_epoch=1, from_kind="tahn")], "schedule[0].from_kind 'tahn' is not one of"),
        ([Swap("relu")], "exactly one of at_epoch and at_step"),
        ([Swap("relu", at_epoch=1, at_step=3)], "exactly one of at_epoch and at_step"),
        ([Swap("relu", at_epoch=-1)], "schedule[0].at_epoch -1 must be an integer >= 0"),
        ([Swap("relu", at_epoch=1, from_kind="relu")], "swaps 'relu' for itself"),
        ([Swap("relu", at_epoch=1, pattern="(")], "schedule[0].pattern '(' is not a valid regular expression"),
        ([Swap("relu", at_epoch=3), Swap("gelu", at_epoch=2)], "schedule[1] (at epoch 2: any activation -> gelu) "
                                                               "comes before schedule[0]"),
        ([Swap("relu", at_epoch=3), Swap("gelu", at_step=50)], "mixes at_epoch and at_step"),
        ([{"from": "tanh", "to": "relu", "at_epoch": 1}], "unknown: ['from']"),
    ],
)
def test_bad_schedules_are_refused_when_built(schedule, message):
    with pytest.raises(ValueError) as error:
        ActivationSwap(schedule)
    assert message in str(error.value)


def test_parametrised_activations_are_refused(monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, "prelu", lambda slope: nn.PReLU())
    with pytest.raises(ValueError, match="'prelu' builds an activation with parameters.*optimizer nor DDP"):
        ActivationSwap([Swap("prelu", at_epoch=1)])


@pytest.mark.parametrize(
    ("schedule", "trainer_args", "message"),
    [
        ([Swap("relu", at_epoch=4)], {"max_epochs": 4}, "never happens: training runs epochs 0..3 (max_epochs=4); "
                                                        "use an at_epoch below 4 or raise max_epochs"),
        ([Swap("relu", at_step=10)], {"max_steps": 10}, "never happens: training stops after 10 steps"),
        ([Swap("relu", at_epoch=1, from_kind="sigmoid")], {"max_epochs": 4},
         "schedule[0] (at epoch 1: sigmoid -> relu) finds nothing to replace in TinyClassifier; its activations "
         "are: net.layers.1: tanh, net.layers.3: tanh; change from_kind or pattern"),
        ([Swap("relu", at_epoch=1, pattern="encoder")], {"max_epochs": 4}, "finds nothing to replace"),
        ([Swap("relu", at_epoch=1), Swap("gelu", at_epoch=2, from_kind="tanh")], {"max_epochs": 4},
         "its activations will be, after schedule[0],: net.layers.1: relu, net.layers.3: relu"),
    ],
)
@pytest.mark.parametrize("when", ["check_before_run", "fit"])  # the CLI's pre-run hook, or fit start without it
def test_impossible_schedules_are_refused_before_training(make_trainer, schedule, trainer_args, message, when):
    model, swap = tiny("tanh"), ActivationSwap(schedule)
    trainer = make_trainer(callbacks=[swap], **trainer_args)
    with pytest.raises(ValueError) as error:
        if when == "check_before_run":
            swap.check_before_run(trainer, model)
        else:
            trainer.fit(model, linear_task())
    assert message in str(error.value)
    assert kinds(model) == ["tanh", "tanh"]  # refused before anything changed


def test_a_later_swap_may_replace_what_an_earlier_one_put_in(make_trainer):
    model = tiny("sigmoid")
    schedule = [Swap("relu", at_epoch=1, from_kind="sigmoid"), Swap("leaky_relu", at_epoch=2, from_kind="relu",
                                                                      negative_slope=0.2)]
    make_trainer(max_epochs=3, callbacks=[ActivationSwap(schedule)]).fit(model, linear_task())
    assert kinds(model) == ["leaky_relu", "leaky_relu"]
    assert model.net.layers[1].negative_slope == 0.2


def _fit(tmp_path, folder, max_epochs=6, ckpt_path=None, schedule=(Swap("relu", at_epoch=2, from_kind="tanh"),)):
    model, swap = tiny("tanh", seed=1), ActivationSwap(list(schedule))
    checkpoints = ModelCheckpoint(dirpath=tmp_path / folder, filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    trainer = L.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, callbacks=[swap, checkpoints])
    trainer.fit(model, linear_task(), ckpt_path=ckpt_path)
    return model, swap


@pytest.mark.parametrize("resume_after_epoch", [3, 0])  # the epoch=3 checkpoint is after the swap, epoch=0 before
def test_resumed_run_trains_the_same_network_as_an_uninterrupted_one(tmp_path, resume_after_epoch):
    full, full_swap = _fit(tmp_path, "full")
    checkpoint = tmp_path / "full" / f"epoch={resume_after_epoch}.ckpt"
    state = torch.load(checkpoint, weights_only=True)["callbacks"]["ActivationSwap"]
    assert len(state["applied"]) == (1 if resume_after_epoch >= 2 else 0)
    resumed, resumed_swap = _fit(tmp_path, "resumed", ckpt_path=checkpoint)
    assert kinds(resumed) == ["relu", "relu"]
    assert resumed_swap.history == full_swap.history
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # Without re-applying the swap, the resumed run would train tanh from epoch 4 on and end elsewhere.


def test_resuming_with_another_schedule_is_refused(tmp_path):
    _fit(tmp_path, "full", max_epochs=4)
    with pytest.raises(ValueError, match="does not start this schedule.*the schedule the checkpoint was written"):
        _fit(tmp_path, "other", ckpt_path=tmp_path / "full" / "epoch=3.ckpt",
             schedule=[Swap("gelu", at_epoch=2, from_kind="tanh")])


def test_callbacks_build_from_yaml_as_under_trainer_callbacks():
    parser = ArgumentParser()
    parser.add_argument("--callbacks", type=list[Callback])
    config = parser.parse_string("""
callbacks:
  - class_path: dlbasics.callbacks.ActivationSwap
    init_args:
      schedule:
        - {at_epoch: 35, from_kind: tanh, to: relu}
  - class_path: dlbasics.callbacks.ActivationStats
    init_args: {every_n_batches: 2, ranges: {relu: [0, 6]}}
""")
    instantiate = getattr(parser, "instantiate", parser.instantiate_classes)  # renamed in jsonargparse 4.49
    swap, stats = instantiate(config).callbacks
    assert swap.schedule == [Swap("relu", at_epoch=35, from_kind="tanh")]
    assert (stats.every_n_batches, stats.ranges["relu"]) == (2, (0.0, 6.0))


class WriteKindsPerRank(Callback):
    """In each DDP process, writes the activation kinds at every epoch start and ActivationStats' first epoch."""

    def __init__(self, folder):
        self.folder, self.seen = folder, []

    def on_train_epoch_start(self, trainer, pl_module):
        self.seen.append([trainer.current_epoch, kinds(pl_module)])

    def on_train_end(self, trainer, pl_module):
        (stats,) = [cb for cb in trainer.callbacks if isinstance(cb, ActivationStats)]
        first = stats.history[0]["layers"]["net.layers.1"]
        report = {"kinds": self.seen, "stats": [first["mean"], first["std"], first["saturated_frac"]]}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_every_ddp_rank_swaps_at_the_same_epoch(tmp_path):
    model = tiny("tanh")
    model.lr = 0.0  # fixed weights, so ActivationStats' epoch 0 can be checked against the whole data set
    callbacks = [ActivationSwap([Swap("relu", at_epoch=1)]), ActivationStats(plot=False), WriteKindsPerRank(tmp_path)]
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=callbacks)
    data = linear_task()
    trainer.fit(model, data)
    with torch.no_grad():  # each rank saw half of the batch; the statistics must cover both halves
        y = torch.tanh(model.net.layers[0](data.dataset.tensors[0]))
    expected = [y.mean().item(), y.std(correction=0).item(), (y.abs() > 0.97).float().mean().item()]
    for rank in (0, 1):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert report["kinds"] == [[0, ["tanh", "tanh"]], [1, ["relu", "relu"]], [2, ["relu", "relu"]]]
        assert report["stats"] == pytest.approx(expected, abs=1e-6)


class Encoder(L.LightningModule):
    """nn.TransformerEncoderLayer with an activation module, batch-first, no dropout: its eval/no-grad forward takes
    the fast path, which reads the activation from a flag set at construction."""

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, activation=activation,
                                                batch_first=True)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(("to", "flag"), [("relu", 1), ("tanh", 0), ("silu", 0)])
def test_a_transformer_layer_runs_the_new_activation_in_eval_mode(make_trainer, to, flag):
    model = Encoder(nn.GELU())
    data = DataLoader(TensorDataset(torch.randn(8, 3, 4)), batch_size=4)
    make_trainer(max_epochs=2, callbacks=[ActivationSwap([Swap(to, at_epoch=1)])]).fit(model, data)
    assert kinds(model) == [to] and model.layer.activation_relu_or_gelu == flag  # 0: no fast path, calls the module
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        slow = model.layer.train()(x)  # training mode always calls `activation`
        fast = model.layer.eval()(x)
    assert torch.allclose(fast, slow, atol=1e-6)
