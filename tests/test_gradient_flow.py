import copy
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import GradientFlowMonitor, GradientFlowWarning
from dlbasics.callbacks.diagnostics._gradient_sums import STATS
from dlbasics.models.components.mlp import MLP


def set_weights(module: nn.Module) -> None:
    """Hand-set, distinct values in every parameter, so the expected gradients do not depend on a seed."""
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.copy_(torch.linspace(-0.6 + 0.1 * i, 0.8 - 0.05 * i, p.numel()).reshape(p.shape))


class Regressor(L.LightningModule):
    """Linear(3, 4) -> tanh -> Linear(4, 2), MSE, plain SGD: a model whose gradients the tests recompute."""

    def __init__(self, net: nn.Module | None = None, lr: float = 0.1) -> None:
        super().__init__()
        self.net = net or nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        self.lr = lr
        set_weights(self.net)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def data(scale: float = 1.0) -> TensorDataset:
    x = torch.linspace(-1, 1, 18).reshape(6, 3) * scale  # 6 points, 3 batches of 2
    y = torch.stack([x.sum(1), x[:, 0] * x[:, 1]], 1)
    return TensorDataset(x, y)


def loader(scale: float = 1.0) -> DataLoader:
    return DataLoader(data(scale), batch_size=2, shuffle=False)


def reference_steps(model: Regressor, epochs: int, scale: float = 1.0) -> list[dict[str, dict[str, float]]]:
    """Per-step statistics by direct autograd on a copy of the model, replaying the SGD updates."""
    net = copy.deepcopy(model.net)
    weights = {"net." + n.removesuffix(".weight"): p for n, p in net.named_parameters() if n.endswith("weight")}
    steps = []
    for _ in range(epochs):
        for x, y in loader(scale):
            grads = torch.autograd.grad(F.mse_loss(net(x), y), list(net.parameters()))
            by_param = dict(zip(net.parameters(), grads))
            steps.append({layer: {"mean_abs": by_param[w].abs().mean().item(), "l2": by_param[w].norm().item(),
                                  "max_abs": by_param[w].abs().max().item(),
                                  "ratio": (by_param[w].norm() / w.norm()).item()} for layer, w in weights.items()})
            with torch.no_grad():
                for p, g in by_param.items():
                    p.add_(g, alpha=-model.lr)  # what torch.optim.SGD does
    return steps


def aggregate(steps: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Average of the per-step statistics, max of max."""
    out = {}
    for layer in steps[0]:
        out[layer] = {s: sum(step[layer][s] for step in steps) / len(steps) for s in ("mean_abs", "l2", "ratio")}
        out[layer]["max_abs"] = max(step[layer]["max_abs"] for step in steps)
    return out


def assert_stats_close(actual: dict[str, float], expected: dict[str, float]) -> None:
    for stat in STATS:
        assert actual[stat] == pytest.approx(expected[stat], rel=1e-6, abs=1e-9), stat


def test_epoch_statistics_match_autograd_averaged_over_steps(make_trainer):
    model = Regressor()
    expected = reference_steps(model, epochs=2)
    monitor = GradientFlowMonitor(plot_every_n_epochs=0)
    trainer = make_trainer(max_epochs=2, callbacks=[monitor])
    trainer.fit(model, loader())

    assert [e["epoch"] for e in monitor.history] == [0, 1]
    assert [e["step"] for e in monitor.history] == [3, 6]
    for entry, epoch_steps in zip(monitor.history, (expected[:3], expected[3:])):
        assert list(entry["layers"]) == ["net.0", "net.2"]
        for layer, stats in aggregate(epoch_steps).items():
            assert_stats_close(entry["layers"][layer], stats)
            assert entry["layers"][layer]["steps"] == 3
            assert entry["layers"][layer]["nonfinite_steps"] == 0
    # The three steps differ, so the average is a real aggregation, not the last step.
    assert expected[0]["net.0"]["mean_abs"] != pytest.approx(expected[2]["net.0"]["mean_abs"], rel=1e-3)
    assert monitor.series("l2")["net.2"] == [e["layers"]["net.2"]["l2"] for e in monitor.history]


def test_interval_and_epoch_scalars_histograms_and_figures_in_tensorboard(tmp_path, make_trainer):
    model = Regressor()
    expected = reference_steps(model, epochs=2)
    monitor = GradientFlowMonitor(log_every_n_steps=2, log_histograms=True)
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = make_trainer(max_epochs=2, callbacks=[monitor], logger=logger)
    trainer.fit(model, loader())

    events = EventAccumulator(logger.log_dir)
    events.Reload()
    tags = events.Tags()
    for layer in ("net.0", "net.2"):
        for stat in STATS:
            epoch_points = events.Scalars(f"grad/{layer}/{stat}")
            assert [p.step for p in epoch_points] == [3, 6]
            assert [p.value for p in epoch_points] == pytest.approx(
                [e["layers"][layer][stat] for e in monitor.history], rel=1e-6)
            # Intervals of 2 optimizer steps, across the epoch boundary: steps (0, 1), (2, 3), (4, 5).
            step_points = events.Scalars(f"grad_step/{layer}/{stat}")
            assert [p.step for p in step_points] == [2, 4, 6]
            want = [aggregate(expected[i:i + 2])[layer][stat] for i in (0, 2, 4)]
            assert [p.value for p in step_points] == pytest.approx(want, rel=1e-5)
        assert f"grad/{layer}/hist" in tags["histograms"]
    assert {"grad/flow", "grad/flow_heatmap"} <= set(tags["images"])
    figures = logger.log_dir + "/figures/"
    for name in ("gradient_flow_epoch000", "gradient_flow_epoch001", "gradient_flow_heatmap"):
        with open(figures + name + ".png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_histograms_without_tensorboard_warn(tmp_path, make_trainer):
    trainer = make_trainer(max_epochs=1, logger=CSVLogger(tmp_path),
                           callbacks=[GradientFlowMonitor(log_histograms=True, plot_every_n_epochs=0)])
    with pytest.warns(UserWarning, match="needs a TensorBoardLogger"):
        trainer.fit(Regressor(), loader())


def test_pattern_bias_and_forward_order(make_trainer):
    monitor = GradientFlowMonitor(pattern=r"net\.2", plot_every_n_epochs=0)
    make_trainer(max_epochs=1, callbacks=[monitor]).fit(Regressor(), loader())
    assert monitor.layers == ["net.2"] and list(monitor.history[0]["layers"]) == ["net.2"]

    monitor = GradientFlowMonitor(include_bias=True, plot_every_n_epochs=0)
    make_trainer(max_epochs=1, callbacks=[monitor]).fit(Regressor(), loader())
    assert monitor.layers == ["net.0", "net.0.bias", "net.2", "net.2.bias"]

    class HeadFirst(nn.Module):  # registered head-first, runs body-first
        def __init__(self) -> None:
            super().__init__()
            self.head, self.body = nn.Linear(4, 2), nn.Linear(3, 4)

        def forward(self, x):
            return self.head(torch.tanh(self.body(x)))

    monitor = GradientFlowMonitor(plot_every_n_epochs=0)
    make_trainer(max_epochs=1, callbacks=[monitor]).fit(Regressor(HeadFirst()), loader())
    assert monitor.layers == ["net.body", "net.head"]
    assert list(monitor.history[0]["layers"]) == ["net.body", "net.head"]


@pytest.mark.parametrize("when", ["check_before_run", "fit"])  # the CLI's pre-run hook, or fit start without it
def test_no_matching_parameter_lists_the_names(make_trainer, when):
    monitor = GradientFlowMonitor(pattern="encoder")
    trainer = make_trainer(max_epochs=1, callbacks=[monitor])
    with pytest.raises(ValueError, match=r"pattern 'encoder'.*net\.0\.weight, net\.0\.bias, net\.2\.weight"):
        if when == "check_before_run":
            monitor.check_before_run(trainer, Regressor())
        else:
            trainer.fit(Regressor(), loader())


@pytest.mark.parametrize("kwargs, message", [
    (dict(vanishing_threshold=0.0), "0 < vanishing_threshold < exploding_threshold"),
    (dict(vanishing_threshold=-1e-7), "vanishing_threshold=-1e-07"),
    (dict(vanishing_threshold=1e3, exploding_threshold=1e3), "exploding_threshold=1000.0"),
    (dict(vanishing_threshold=float("nan")), "vanishing_threshold=nan"),
    (dict(log_every_n_steps=0), "log_every_n_steps 0"),
    (dict(plot_every_n_epochs=-1), "plot_every_n_epochs -1"),
    (dict(pattern="net[0"), "pattern 'net\\[0' is not a valid regular expression"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientFlowMonitor(**kwargs)


def test_vanishing_and_exploding_warning_names_layers_and_epoch(make_trainer):
    model = Regressor()
    # Inputs scaled by 1e-6: the first layer's weight gradient (input x delta) is tiny, the last layer's is not.
    stats = aggregate(reference_steps(model, epochs=1, scale=1e-6))
    low, high = stats["net.0"]["mean_abs"], stats["net.2"]["mean_abs"]
    assert high / low > 1e4
    monitor = GradientFlowMonitor(vanishing_threshold=low * 10, exploding_threshold=high / 10, plot_every_n_epochs=0)
    trainer = make_trainer(max_epochs=1, callbacks=[monitor])
    with pytest.warns(GradientFlowWarning) as record:
        trainer.fit(model, loader(scale=1e-6))
    (message,) = [str(w.message) for w in record if w.category is GradientFlowWarning]
    assert message.startswith("GradientFlowMonitor, epoch 0: vanishing gradients (mean |grad| < ")
    assert message.endswith(" in: net.0; exploding gradients (mean |grad| > "
                            f"{high / 10:g} or NaN/inf) in: net.2")

    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientFlowWarning)  # defaults: nothing to report on this model
        make_trainer(max_epochs=1, callbacks=[GradientFlowMonitor(plot_every_n_epochs=0)]).fit(Regressor(), loader())


def test_history_is_in_checkpoints_and_loads_weights_only(tmp_path, make_trainer):
    monitor = GradientFlowMonitor(plot_every_n_epochs=0)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt")
    make_trainer(max_epochs=2, callbacks=[monitor, checkpoint], enable_checkpointing=True).fit(Regressor(), loader())
    state = torch.load(checkpoint.best_model_path, weights_only=True)["callbacks"][monitor.state_key]
    restored = GradientFlowMonitor()
    restored.load_state_dict(state)
    assert restored.history == monitor.history


class Classifier(L.LightningModule):
    """The L2.c net: MLP((2,), 2, [32] * 6), cross-entropy, Adam lr 0.07."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self.net = MLP((2,), 2, [32] * 6, activation=activation)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.07)


def test_deep_sigmoid_net_has_vanishing_early_gradients(make_trainer):
    """L2.c: 30 full-batch epochs on the linear task (N=200); compare first vs last hidden layer and vs ReLU."""
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] + x[:, 1] > 0).long()
    first = {}
    for activation in ("sigmoid", "relu"):
        torch.manual_seed(0)  # same initial weights for both nets
        monitor = GradientFlowMonitor(plot_every_n_epochs=0, vanishing_threshold=1e-12)
        make_trainer(max_epochs=30, callbacks=[monitor]).fit(
            Classifier(activation), DataLoader(TensorDataset(x, y), batch_size=200))
        curves = {layer: sum(v) / len(v) for layer, v in monitor.series("mean_abs").items()}
        hidden = monitor.layers[:-1]  # six hidden Linear layers; the last entry is the output layer
        assert len(hidden) == 6
        first[activation] = curves[hidden[0]]
        if activation == "sigmoid":
            assert curves[hidden[0]] < 0.1 * curves[hidden[-1]]
    assert first["sigmoid"] < 0.1 * first["relu"]
