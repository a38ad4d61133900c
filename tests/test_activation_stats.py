import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import ActivationStats, ActivationSwap, Swap
from dlbasics.callbacks.diagnostics._activation_sums import histogram, histogram_sample, scatter_histogram
from dlbasics.models.components.mlp import MLP


class Frozen(L.LightningModule):
    """Any LightningModule around ``net``, trained with lr 0 so the activations are the same every epoch."""

    def __init__(self, net: nn.Module, lr: float = 0.0) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).square().mean()

    def validation_step(self, batch, batch_idx):
        self.net(batch[0] * 100.0)  # would change every statistic if validation were counted

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def loader(x, batch_size=None):
    return DataLoader(TensorDataset(x), batch_size=batch_size or len(x))


def linear(weight, bias):
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def fit(make_trainer, net, x, stats, batch_size=None, **trainer_args):
    """Fit ``net`` on ``x`` with ``stats``; the validation batches (x * 100) must not count."""
    model = Frozen(net)
    trainer = make_trainer(**{"max_epochs": 2, "callbacks": [stats], **trainer_args})
    trainer.fit(model, loader(x, batch_size), loader(x))
    return model


def test_dead_units_are_counted(make_trainer):
    # Inputs are positive, so units 3 and 4 (negative weights and bias) are negative for every input: 2 of 5 dead.
    net = nn.Sequential(linear([[1, 1], [1, 0], [0, 1], [-1, -1], [-2, 0]], [0.1, 0.1, 0.1, -0.1, -0.1]), nn.ReLU())
    stats = ActivationStats()
    fit(make_trainer, net, torch.rand(64, 2), stats, batch_size=16)
    assert [entry["layers"]["net.1"]["dead_frac"] for entry in stats.history] == [pytest.approx(0.4)] * 2
    assert "saturated_frac" not in stats.history[0]["layers"]["net.1"]


def test_leaky_units_that_are_never_positive_are_negative_not_dead(make_trainer):
    # The same layer as above with LeakyReLU: units 3 and 4 are never positive, but they still pass gradient.
    net = nn.Sequential(linear([[1, 1], [1, 0], [0, 1], [-1, -1], [-2, 0]], [0.1, 0.1, 0.1, -0.1, -0.1]),
                        nn.LeakyReLU(0.01))
    stats = ActivationStats()
    fit(make_trainer, net, torch.rand(64, 2), stats, batch_size=16)
    layer = stats.history[0]["layers"]["net.1"]
    assert layer["negative_frac"] == pytest.approx(0.4) and layer["units"] == 5 and "dead_frac" not in layer


def test_dead_channels_of_a_conv_layer(make_trainer):
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.weight[2].fill_(-0.1)  # channel 2 is negative for positive images
        conv.bias.zero_()
    stats = ActivationStats()
    fit(make_trainer, nn.Sequential(conv, nn.ReLU()), torch.rand(8, 1, 6, 6) + 0.1, stats, max_epochs=1)
    assert stats.history[0]["layers"]["net.1"]["dead_frac"] == pytest.approx(0.25)


@pytest.mark.parametrize(("activation", "saturated"), [
    (nn.Tanh(), lambda y: y.abs() > 0.97),
    (nn.Sigmoid(), lambda y: (y < 0.01) | (y > 0.99)),
])  # fmt: skip
def test_saturated_fraction_mean_and_std_match_a_direct_computation(make_trainer, activation, saturated):
    x = torch.linspace(-6, 6, 101)[:, None]
    layer = linear([[1.0], [0.5], [2.0]], [0.0, 1.0, -1.0])
    stats = ActivationStats(every_n_batches=1)
    fit(make_trainer, nn.Sequential(layer, activation), x, stats, batch_size=32)
    with torch.no_grad():
        y = activation(layer(x))  # the same values, seen over 4 uneven batches
    got = stats.history[-1]["layers"]["net.1"]
    assert got["saturated_frac"] == pytest.approx(saturated(y).float().mean().item(), abs=1e-6)
    assert 0.2 < got["saturated_frac"] < 0.8
    assert got["mean"] == pytest.approx(y.mean().item(), abs=1e-6)
    assert got["std"] == pytest.approx(y.std(correction=0).item(), rel=1e-5)
    assert sum(got["hist"]) == y.numel()


def test_every_n_batches_samples_the_first_of_each_n(make_trainer):
    x = torch.arange(40.0)[:, None] / 10
    stats = ActivationStats(every_n_batches=2)
    fit(make_trainer, nn.Sequential(linear([[1.0]], [0.0]), nn.Tanh()), x, stats, batch_size=10, max_epochs=1)
    sampled = torch.tanh(torch.cat([x[0:10], x[20:30]]))  # batches 0 and 2 of 0..3
    assert stats.history[0]["layers"]["net.1"]["mean"] == pytest.approx(sampled.mean().item(), abs=1e-6)


def test_histogram_counts_evenly_spaced_examples_of_a_big_batch_and_the_rest_every_value(make_trainer):
    x = torch.linspace(-3, 3, 64)[:, None]
    layer = linear([[1.0]] * 10, [0.1 * i for i in range(10)])  # 64 examples x 10 units = 640 values per batch
    stats = ActivationStats(every_n_batches=1, hist_max_values=200)
    fit(make_trainer, nn.Sequential(layer, nn.Tanh()), x, stats, max_epochs=1)  # one batch of 64
    with torch.no_grad():
        y = torch.tanh(layer(x))
    got = stats.history[0]["layers"]["net.1"]
    counted = y[::4]  # 640 / 200 -> every 4th example: 16 examples, 160 values
    assert got["hist"] == torch.histc(counted, 40, -1.0, 1.0).tolist() and sum(got["hist"]) == 160
    assert got["mean"] == pytest.approx(y.mean().item(), abs=1e-6)  # the moments see every value
    assert got["saturated_frac"] == pytest.approx((y.abs() > 0.97).float().mean().item(), abs=1e-6)


def test_histogram_sample_keeps_at_least_one_whole_example():
    y = torch.randn(8, 3, 4, 4)  # 48 values per example
    assert histogram_sample(y, None) is y and histogram_sample(y, 10_000) is y
    assert torch.equal(histogram_sample(y, 100), y[::4])  # 384 values / 100 -> every 4th example
    assert torch.equal(histogram_sample(y, 5), y[:1])
    assert torch.equal(histogram_sample(torch.arange(10.0), 3), torch.tensor([0.0, 4.0, 8.0]))
    uneven = torch.randn(10, 3)  # 3 values per example, at most 10 values: 3 whole examples, not 4
    assert torch.equal(histogram_sample(uneven, 10), uneven[::4]) and histogram_sample(uneven, 10).numel() <= 10


def test_histogram_matches_histc():
    y = torch.randn(1000) * 0.7
    y[:3] = torch.tensor([-1.0, 1.0, 5.0])  # both edges count, like histc; outside values count nowhere
    assert torch.equal(histogram(y, 40, -1.0, 1.0), torch.histc(y, 40, -1.0, 1.0))
    assert torch.equal(scatter_histogram(y, 40, -1.0, 1.0), torch.histc(y, 40, -1.0, 1.0))  # the CUDA path


def test_hooks_removed_logged_to_tensorboard_and_figure_written(make_trainer, tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    net = MLP((2,), 2, [8, 8], "tanh")
    stats = ActivationStats(log_histograms=True)
    fit(make_trainer, net, torch.randn(50, 2), stats, max_epochs=3, logger=logger)
    assert all(not module._forward_hooks for module in net.modules())
    events = EventAccumulator(logger.log_dir).Reload()
    for layer, label in (("net.layers.1", "act1 (net.layers.1)"), ("net.layers.3", "act2 (net.layers.3)")):
        means = events.Scalars(f"act/{label}/mean")
        assert [(e.step, e.value) for e in means] == [  # at each epoch's last step, as train/'s epoch metrics
            (h["step"] - 1, pytest.approx(h["layers"][layer]["mean"])) for h in stats.history]
        assert {f"act/{label}/std", f"act/{label}/saturated_frac"} <= set(events.Tags()["scalars"])
        assert f"act/{label}/hist" in events.Tags()["histograms"]
    assert (tmp_path / "tb" / "version_0" / "figures" / "activations_over_time.png").stat().st_size > 10_000
    assert "act/over_time" in events.Tags()["images"]


def test_swapped_layers_are_still_watched(make_trainer):
    net = MLP((2,), 2, [16], "tanh")
    stats = ActivationStats()
    swap = ActivationSwap([Swap("relu", at_epoch=2)])
    model = Frozen(net, lr=0.05)
    x = torch.randn(64, 2)
    make_trainer(max_epochs=4, callbacks=[stats, swap]).fit(model, loader(x), loader(x))
    layer = [entry["layers"]["net.layers.1"] for entry in stats.history]
    assert [entry["kind"] for entry in layer] == ["tanh", "tanh", "relu", "relu"]
    assert "saturated_frac" in layer[1] and "dead_frac" in layer[2]
    assert [entry["hist_range"] for entry in layer] == [[-1.0, 1.0]] * 2 + [[0.0, 4.0]] * 2
    assert not net.layers[1]._forward_hooks


def test_history_is_checkpointed_as_plain_values(make_trainer, tmp_path):
    stats = ActivationStats(pattern="layers\\.3")
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="last")
    fit(make_trainer, MLP((2,), 2, [4, 4], "relu"), torch.randn(20, 2), stats, enable_checkpointing=True,
        callbacks=[stats, checkpoint])
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"][stats.state_key]
    assert saved["history"] == stats.history and list(saved["history"][0]["layers"]) == ["net.layers.3"]


@pytest.mark.parametrize("when", ["check_before_run", "fit"])  # the CLI's pre-run hook, or fit start without it
def test_no_matching_layer_is_refused_with_the_layers_found(make_trainer, when):
    stats, net = ActivationStats(kinds=["relu"], pattern="enc"), MLP((2,), 2, [4, 4], "tanh")
    with pytest.raises(ValueError, match=r"no activation of kinds \['relu'\] matching pattern 'enc' .* "
                                         r"net.layers.1: tanh, net.layers.3: tanh. Change `kinds` or `pattern`"):
        if when == "check_before_run":
            stats.check_before_run(make_trainer(callbacks=[stats]), Frozen(net))
        else:
            fit(make_trainer, net, torch.randn(8, 2), stats)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kinds": ["rleu"]}, "kinds entry 'rleu' is not one of"),
    ({"pattern": "["}, "pattern '[' is not a valid regular expression"),
    ({"every_n_batches": 0}, "every_n_batches 0 must be an integer >= 1"),
    ({"bins": 2.5}, "bins 2.5 must be an integer >= 1"),
    ({"hist_max_values": 0}, "hist_max_values 0 must be an integer >= 1"),
    ({"ranges": {"relu": (3.0, 1.0)}}, "ranges['relu'] = [3.0, 1.0] must have min < max"),
    ({"ranges": {"prelu": (0.0, 1.0)}}, "ranges key 'prelu' is not one of"),
])  # fmt: skip
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError) as error:
        ActivationStats(**kwargs)
    assert message in str(error.value)


class Seq(nn.Module):
    """``layer`` then ``act`` on (B, L, F) or (B, C, L) inputs; ``first`` puts the activation before the layer in
    registration order, so no layer precedes it."""

    def __init__(self, layer: nn.Module, act: nn.Module, first: bool = False) -> None:
        super().__init__()
        if first:
            self.act, self.layer = act, layer
        else:
            self.layer, self.act = layer, act

    def forward(self, x):
        return self.act(self.layer(x))


def dead_along(y: torch.Tensor, dim: int) -> float:
    """Dead fraction of the units on ``dim``, computed directly."""
    dims = [d for d in range(y.dim()) if d != dim % y.dim()]
    return 1.0 - (y.amax(dim=dims) > 0).double().mean().item()


@pytest.mark.parametrize(("make", "shape", "dim"), [
    (lambda: linear([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3, [0.0] * 6), (8, 5, 2), -1),  # (B, L, F): features
    (lambda: nn.Conv1d(2, 6, 1), (8, 2, 5), 1),  # (B, C, L) after a conv: channels
])  # fmt: skip
def test_a_unit_follows_the_layer_before_the_activation(make_trainer, make, shape, dim):
    torch.manual_seed(0)
    layer = make()
    if isinstance(layer, nn.Conv1d):
        with torch.no_grad():
            layer.bias[:3] = -100.0  # channels 0..2 dead
    x = torch.rand(shape) + 0.1  # positive, so features with weight -1 and bias 0 are dead
    stats = ActivationStats(every_n_batches=1, plot=False)
    fit(make_trainer, Seq(layer, nn.ReLU()), x, stats, batch_size=3, max_epochs=1)  # batches of 3, 3, 2
    with torch.no_grad():
        y = torch.relu(layer(x))
    got = stats.history[0]["layers"]["net.act"]
    assert got["dead_frac"] == pytest.approx(dead_along(y, dim)) and got["dead_frac"] == pytest.approx(0.5)
    assert got["units"] == 6 and got["unit_dim"] == dim % 3


def test_without_a_layer_before_it_the_shape_decides_and_unit_dims_overrides(make_trainer):
    x = torch.rand(6, 4, 5) - 0.5  # (B, L, F) straight into the activation
    with torch.no_grad():
        x[:, :, :2] = -1.0  # features 0, 1 dead; no position is
    identity = linear(torch.eye(5).tolist(), [0.0] * 5)  # registered after the activation
    by_shape = ActivationStats(every_n_batches=1, plot=False)
    fit(make_trainer, Seq(identity, nn.ReLU(), first=True), x, by_shape, max_epochs=1)
    assert by_shape.history[0]["layers"]["net.act"]["dead_frac"] == pytest.approx(2 / 5)  # 3-D: last dim
    positions = ActivationStats(every_n_batches=1, plot=False, unit_dims={r"act$": 1})
    fit(make_trainer, Seq(identity, nn.ReLU(), first=True), x, positions, max_epochs=1)
    got = positions.history[0]["layers"]["net.act"]
    assert (got["dead_frac"], got["units"], got["unit_dim"]) == (0.0, 4, 1)


def test_a_unit_dim_out_of_range_warns_once_and_training_goes_on(make_trainer):
    stats = ActivationStats(every_n_batches=1, plot=False, unit_dims={"": 3})
    with pytest.warns(UserWarning, match=r"layer 'net.1' put out shape \(4, 2\), which has no dim 3 .*unit_dims") as w:
        fit(make_trainer, nn.Sequential(nn.Linear(2, 2), nn.ReLU()), torch.randn(8, 2), stats, batch_size=4)
    assert sum("has no dim 3" in str(r.message) for r in w) == 1  # 4 batches, one warning
    assert [set(e["layers"]["net.1"]) >= {"mean", "std"} and "dead_frac" not in e["layers"]["net.1"]
            for e in stats.history] == [True, True]


def test_unit_dims_that_match_no_layer_are_refused_before_the_run(make_trainer):
    stats = ActivationStats(unit_dims={"encoder": -1})
    with pytest.raises(ValueError, match=r"unit_dims key 'encoder' matches none of the watched layers: "
                                         r"net.layers.1, net.layers.3; change or remove it"):
        stats.check_before_run(make_trainer(callbacks=[stats]), Frozen(MLP((2,), 2, [4, 4], "tanh")))


@pytest.mark.parametrize(("unit_dims", "message"), [
    ({"[": 1}, "unit_dims key '[' is not a valid regular expression"),
    ({"": 8}, "unit_dims[''] 8 must be an integer in [-8, 8)"),
    ({"": 1.0}, "unit_dims[''] 1.0 must be an integer in [-8, 8)"),
])  # fmt: skip
def test_bad_unit_dims_are_refused(unit_dims, message):
    with pytest.raises(ValueError) as error:
        ActivationStats(unit_dims=unit_dims)
    assert message in str(error.value)


def test_ranks_with_different_unit_sets_pack_the_same_sizes():
    """Under DDP every rank packs the union of the ranks' (call, units) keys; a key a rank never saw is all dead
    there, so the gathered maximum is the other rank's."""
    from dlbasics.callbacks.diagnostics._activation_sums import LayerSums

    ranks = [LayerSums("act", bins=4), LayerSums("act", bins=4)]
    ranks[0].add(torch.tensor([[1.0, -1.0, 1.0]]), "relu", (0.0, 4.0))  # call 0: 3 units, one dead
    ranks[1].add(torch.tensor([[-1.0, -1.0, 1.0]]), "relu", (0.0, 4.0))
    ranks[1].add(torch.tensor([[1.0, -1.0]]), "relu", (0.0, 4.0), call=1)  # only rank 1 ran call 1 (2 units)
    keys = sorted(set(ranks[0].alive) | set(ranks[1].alive))
    assert keys == [(0, 3), (1, 2)]
    rows = torch.stack([sums.pack(keys) for sums in ranks]).numpy()
    assert rows.shape == (2, ranks[0].size(keys)) == (2, 6 + 4 + 5)
    stats = ranks[0].read(rows)
    assert (stats["dead_frac"], stats["units"], stats["unit_dim"]) == (pytest.approx(2 / 5), 5, 1)
