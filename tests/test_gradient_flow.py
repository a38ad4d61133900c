import copy
import warnings
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import ActivationStats, GradientFlowMonitor, GradientFlowWarning
from dlbasics.callbacks.diagnostics._names import layer_labels, module_kind
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
    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0)
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


class LoggingRegressor(Regressor):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss


def test_grad_and_act_scalars_share_the_steps_of_the_models_own_train_scalars(tmp_path, make_trainer):
    # One chart's x axis means one thing: grad/ and act/ once started one step to the right of train/.
    logger = TensorBoardLogger(tmp_path, name="tb")
    callbacks = [GradientFlowMonitor(log_every_n_steps=1), ActivationStats(plot=False)]
    make_trainer(max_epochs=2, callbacks=callbacks, logger=logger, log_every_n_steps=1).fit(LoggingRegressor(),
                                                                                           loader())
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    steps = {tag: [p.step for p in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert steps["train/loss_epoch"] == [2, 5] and steps["train/loss_step"] == [0, 1, 2, 3, 4, 5]
    assert steps["grad/linear1 (net.0)/mean_abs"] == steps["act/act1 (net.1)/mean"] == steps["train/loss_epoch"]
    assert steps["grad_step/linear1 (net.0)/mean_abs"] == steps["train/loss_step"]


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
    for layer, label in (("net.0", "linear1 (net.0)"), ("net.2", "linear2 (net.2)")):
        for stat in STATS:
            epoch_points = events.Scalars(f"grad/{label}/{stat}")
            assert [p.step for p in epoch_points] == [2, 5]  # each epoch's last step, as Lightning logs on_epoch
            assert [p.value for p in epoch_points] == pytest.approx(
                [e["layers"][layer][stat] for e in monitor.history], rel=1e-6)
            # Intervals of 2 optimizer steps, across the epoch boundary: steps (0, 1), (2, 3), (4, 5), each at its
            # last step.
            step_points = events.Scalars(f"grad_step/{label}/{stat}")
            assert [p.step for p in step_points] == [1, 3, 5]
            want = [aggregate(expected[i:i + 2])[layer][stat] for i in (0, 2, 4)]
            assert [p.value for p in step_points] == pytest.approx(want, rel=1e-5)
        assert f"grad/{label}/hist" in tags["histograms"]
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
    monitor = GradientFlowMonitor(every_n_steps=1, vanishing_threshold=low * 10, exploding_threshold=high / 10,
                                  plot_every_n_epochs=0)
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


def clipped_reference_steps(model: Regressor, clip: float, algorithm: str) -> list[dict[str, dict]]:
    """Per-step statistics of one epoch, before and after clipping as Lightning clips, replaying SGD on the clipped
    gradients."""
    net = copy.deepcopy(model.net)
    weights = {"net." + n.removesuffix(".weight"): p for n, p in net.named_parameters() if n.endswith("weight")}
    steps = []
    for x, y in loader():
        grads = dict(zip(net.parameters(), torch.autograd.grad(F.mse_loss(net(x), y), list(net.parameters()))))
        if algorithm == "norm":
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
            clipped = {p: g * min(1.0, clip / (total.item() + 1e-6)) for p, g in grads.items()}
        else:
            clipped = {p: g.clamp(-clip, clip) for p, g in grads.items()}
        steps.append({when: {layer: {"mean_abs": g[w].abs().mean().item(), "l2": g[w].norm().item(),
                                     "max_abs": g[w].abs().max().item(), "ratio": (g[w].norm() / w.norm()).item()}
                             for layer, w in weights.items()}
                      for when, g in (("before_clipping", grads), ("after_clipping", clipped))})
        with torch.no_grad():
            for p, g in clipped.items():
                p.add_(g, alpha=-model.lr)
    return steps


@pytest.mark.parametrize("algorithm, clip", [("norm", 0.3), ("value", 0.05)])
@pytest.mark.parametrize("measure_at", ["before_clipping", "after_clipping"])
def test_measure_before_or_after_gradient_clipping(make_trainer, measure_at, algorithm, clip):
    model = Regressor()
    steps = clipped_reference_steps(model, clip, algorithm)
    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0, measure_at=measure_at)
    make_trainer(max_epochs=1, callbacks=[monitor], gradient_clip_val=clip,
                 gradient_clip_algorithm=algorithm).fit(model, loader())
    expected = aggregate([step[measure_at] for step in steps])
    for layer, stats in expected.items():
        assert_stats_close(monitor.history[0]["layers"][layer], stats)
    other = aggregate([step["after_clipping" if measure_at == "before_clipping" else "before_clipping"]
                       for step in steps])  # clipping acts, so the other choice would read differently
    assert other["net.0"]["max_abs"] != pytest.approx(expected["net.0"]["max_abs"], rel=1e-3)


def test_bad_measure_at_is_refused():
    with pytest.raises(ValueError, match="measure_at 'after' is not one of: before_clipping, after_clipping"):
        GradientFlowMonitor(measure_at="after")


@pytest.mark.parametrize(("name", "role", "tag"), [
    ("net.0.weight", "weight", "net.0"),
    ("enc.self_attn.in_proj_weight", "weight", "enc.self_attn.in_proj_weight"),
    ("enc.self_attn.q_proj_weight", "weight", "enc.self_attn.q_proj_weight"),
    ("net.0.weight_orig", "weight", "net.0.weight_orig"),
    ("net.0.parametrizations.weight.original", "weight", "net.0"),
    ("net._orig_mod.0.weight", "weight", "net.0"),
    ("net.0.bias", "bias", "net.0.bias"),
    ("enc.self_attn.in_proj_bias", "bias", "enc.self_attn.in_proj_bias"),
    ("enc.self_attn.bias_k", "bias", "enc.self_attn.bias_k"),
    ("vit.class_token", "other", "vit.class_token"),
    ("vit.encoder.pos_embedding", "other", "vit.encoder.pos_embedding"),
])  # fmt: skip
def test_parameter_roles_and_tags(name, role, tag):
    from dlbasics.callbacks.diagnostics._gradient_layers import layer_tag, parameter_role

    assert (parameter_role(name), layer_tag(name)) == (role, tag)


def test_attention_projections_biases_and_other_parameters_are_watched(make_trainer):
    class Attend(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.zeros(1, 1, 3))
            self.attn = nn.MultiheadAttention(3, 1, add_bias_kv=True, batch_first=True)
            self.head = nn.Linear(3, 2)

        def forward(self, x):  # (B, 3) -> (B, 2, 3) with the token in front -> (B, 2)
            seq = torch.cat([self.token.expand(len(x), 1, 3), x[:, None]], 1)
            return self.head(self.attn(seq, seq, seq, need_weights=False)[0][:, 0])

    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0, include_bias=True, include_other=True)
    make_trainer(max_epochs=1, callbacks=[monitor]).fit(Regressor(Attend()), loader())
    assert monitor.layers == ["net.token", "net.attn.in_proj_weight", "net.attn.in_proj_bias", "net.attn.bias_k",
                              "net.attn.bias_v", "net.attn.out_proj", "net.attn.out_proj.bias", "net.head",
                              "net.head.bias"]
    assert all(monitor.history[0]["layers"][layer]["steps"] == 3 for layer in monitor.layers)
    with pytest.raises(ValueError, match="no trainable weight or bias or other parameter matching pattern 'enc'"):
        GradientFlowMonitor(pattern="enc", include_bias=True, include_other=True).check_before_run(
            make_trainer(), Regressor(Attend()))


def test_a_nan_gradient_is_counted_not_averaged(make_trainer):
    class NanAtStep1(Regressor):
        def on_after_backward(self):
            if self.global_step == 1:
                self.net[2].weight.grad[0, 0] = float("nan")

        def on_before_optimizer_step(self, optimizer):  # after the callbacks' hook: the monitor saw the NaN
            self.net[2].weight.grad.nan_to_num_(0.0)

    model = NanAtStep1(lr=0.0)  # the weights never change, so the steps are the reference's
    steps = reference_steps(model, epochs=1)
    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0)
    with pytest.warns(GradientFlowWarning, match=r"exploding gradients .* in: net\.2$"):
        make_trainer(max_epochs=1, callbacks=[monitor]).fit(model, loader())
    layers = monitor.history[0]["layers"]
    assert [(layers[n]["steps"], layers[n]["nonfinite_steps"]) for n in ("net.0", "net.2")] == [(3, 0), (2, 1)]
    assert_stats_close(layers["net.0"], aggregate(steps)["net.0"])
    assert_stats_close(layers["net.2"], aggregate([steps[0], steps[2]])["net.2"])


def test_default_sampling_measures_one_step_in_ten_of_each_epoch(make_trainer):
    model = Regressor()
    expected = reference_steps(model, epochs=2)  # 3 steps an epoch: by default each epoch's first is measured
    monitor = GradientFlowMonitor(plot_every_n_epochs=0)
    make_trainer(max_epochs=2, callbacks=[monitor]).fit(model, loader())
    for entry, step in zip(monitor.history, (expected[0], expected[3])):
        for layer, stats in step.items():
            assert_stats_close(entry["layers"][layer], stats)
            assert entry["layers"][layer]["steps"] == 1


def test_every_n_steps_counts_per_epoch_and_survives_a_mid_epoch_resume(tmp_path, make_trainer):
    model = Regressor()
    expected = reference_steps(model, epochs=2)
    monitor = GradientFlowMonitor(plot_every_n_epochs=0, every_n_steps=2)  # steps 0, 2 of each epoch
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    make_trainer(max_epochs=2, callbacks=[monitor, checkpoint], enable_checkpointing=True).fit(Regressor(), loader())
    for entry, steps in zip(monitor.history, ((0, 2), (3, 5))):
        for layer, stats in aggregate([expected[i] for i in steps]).items():
            assert_stats_close(entry["layers"][layer], stats)
    # The step=4 checkpoint is from epoch 1 after its batch 0: a run resumed from it measures the epoch's third
    # step (global step 5), as this one did, not its second.
    state = torch.load(tmp_path / "ckpt" / "epoch=1-step=4.ckpt", weights_only=True)["callbacks"][monitor.state_key]
    optimizer = torch.optim.SGD(Regressor().parameters(), lr=0.1)
    trainer = SimpleNamespace(current_epoch=1, optimizers=[optimizer])
    resumed, fresh = GradientFlowMonitor(every_n_steps=2), GradientFlowMonitor(every_n_steps=2)
    resumed.load_state_dict(state)
    assert resumed.history == monitor.history[:1]
    assert [resumed._sampler.measures(trainer, optimizer) for _ in range(2)] == [False, True]
    assert [fresh._sampler.measures(trainer, optimizer) for _ in range(2)] == [True, False]


def test_bad_every_n_steps_is_refused():
    with pytest.raises(ValueError, match="every_n_steps 0 must be an integer >= 1"):
        GradientFlowMonitor(every_n_steps=0)


def test_layers_get_readable_names_numbered_per_kind_in_forward_order():
    names = ["features.0", "features.1", "features.1.bias", "features.4", "head.out"]
    kinds = ["conv2d", "batchnorm2d", "batchnorm2d", "conv2d", "linear"]
    assert layer_labels(names, kinds) == {
        "features.0": "conv2d1 (features.0)", "features.1": "batchnorm2d1 (features.1)",
        "features.1.bias": "batchnorm2d1 (features.1.bias)", "features.4": "conv2d2 (features.4)",
        "head.out": "linear1 (head.out)"}
    ten = layer_labels([f"l.{i}" for i in range(10)], ["linear"] * 10)  # sorted as text, still in order
    assert list(ten.values()) == sorted(ten.values()) and ten["l.9"] == "linear10 (l.9)"
    members = layer_labels(["members.0.l.0", "members.0.l.2", "members.1.l.0"], ["linear"] * 3)
    assert list(members.values()) == ["linear1 (members.0.l.0)", "linear2 (members.0.l.2)", "linear1 (members.1.l.0)"]
    with pytest.raises(ValueError, match="one kind per name"):
        layer_labels(["a", "b"], ["linear"])
    attention = nn.MultiheadAttention(4, 2)
    assert [module_kind(m) for m in (attention, attention.out_proj, nn.Conv1d(1, 1, 1))] == [
        "multiheadattention", "linear", "conv1d"]


def test_the_monitor_names_a_foreign_models_layers_in_forward_order(tmp_path, make_trainer):
    # Registered head first, run last: the numbers follow forward order, not registration.
    class HeadFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.body = nn.Linear(4, 2), nn.Sequential(nn.Linear(3, 4), nn.Tanh())

        def forward(self, x):
            return self.head(self.body(x))

    monitor = GradientFlowMonitor(plot_every_n_epochs=0)
    make_trainer(max_epochs=1, callbacks=[monitor]).fit(Regressor(HeadFirst()), loader())
    assert monitor.labels == {"net.body.0": "linear1 (net.body.0)", "net.head": "linear2 (net.head)"}
