"""The diagnostic callbacks on models nobody here wrote (issue 13): torchvision ResNets, nn.TransformerEncoder, a
module reusing one activation, manual optimization, bf16-mixed with accumulation and clipping, torch.compile.

Tiny sizes, random weights and data, CPU, no downloads. Every statistic is checked against an independent
computation: gradients from ``.grad`` in a callback of the test's own, activations from forward hooks of the test's
own, never against the callback under test.
"""

from __future__ import annotations

import math
from collections import defaultdict

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, Bottleneck

from dlbasics.callbacks import ActivationStats, ActivationSwap, GradientFlowMonitor, NonFiniteGuard, Swap

QUIET = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False)


class Foreign(L.LightningModule):
    """A LightningModule as anyone would write it: a network, cross-entropy, plain SGD."""

    def __init__(self, net: nn.Module, lr: float = 0.01) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def images(n: int, channels: int = 3, size: int = 32, classes: int = 10, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, channels, size, size, generator=g)
    return DataLoader(TensorDataset(x, torch.randint(0, classes, (n,), generator=g)), batch_size=batch_size)


def fit(model: L.LightningModule, data, callbacks: list[Callback], tmp_path, **trainer_args) -> L.Trainer:
    trainer = L.Trainer(**{**QUIET, "max_epochs": 1, "default_root_dir": tmp_path, **trainer_args},
                        callbacks=callbacks)
    trainer.fit(model, data)
    return trainer


# Independent references.

def tag(name: str) -> str:
    return name.replace("._orig_mod", "").removesuffix(".weight")


def grad_stats(grad: torch.Tensor, weight: torch.Tensor) -> dict[str, float]:
    g = grad.double()
    return {"mean_abs": g.abs().mean().item(), "l2": g.norm().item(), "max_abs": g.abs().max().item(),
            "ratio": (g.norm() / weight.double().norm()).item()}


class GradRecorder(Callback):
    """The statistics of every weight's ``.grad`` at each optimizer step, straight from the tensors.

    With ``clip_norm``, of the gradients clipped as ``clip_grad_norm_`` clips them, computed on copies.
    """

    def __init__(self, clip_norm: float | None = None) -> None:
        self.clip_norm, self.steps = clip_norm, []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        stepping = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = [(n, p) for n, p in pl_module.named_parameters() if id(p) in stepping and p.grad is not None]
        grads = {n: p.grad.detach().clone() for n, p in named}
        if self.clip_norm is not None:
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
            coef = min(1.0, self.clip_norm / (total.item() + 1e-6))
            assert coef < 0.5, "the test wants clipping to act"
            grads = {n: g * coef for n, g in grads.items()}
        self.steps.append({tag(n): grad_stats(grads[n], p.detach()) for n, p in named if n.endswith("weight")})


def epoch_average(steps: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each statistic over the steps a layer was in (max of max_abs), as GradientFlowMonitor documents."""
    layers = dict.fromkeys(layer for step in steps for layer in step)
    out = {}
    for layer in layers:
        rows = [step[layer] for step in steps if layer in step]
        out[layer] = {s: sum(r[s] for r in rows) / len(rows) for s in ("mean_abs", "l2", "ratio")}
        out[layer].update(max_abs=max(r["max_abs"] for r in rows), steps=len(rows))
    return out


def assert_matches(history_layers: dict, expected: dict, layers: list[str] | None = None) -> None:
    for layer in layers or expected:
        got, want = history_layers[layer], expected[layer]
        assert got["steps"] == want["steps"], layer
        for stat in ("mean_abs", "l2", "max_abs", "ratio"):
            assert got[stat] == pytest.approx(want[stat], rel=1e-4), (layer, stat)  # float32 sums of ~1e5 values


class ActivationProbe(Callback):
    """Forward hooks of the test's own on activation modules: every value and, per call in a batch, which units
    (along ``dims[name]``) were ever > 0."""

    def __init__(self, modules: dict[str, nn.Module], dims: dict[str, int]) -> None:
        self.modules, self.dims = modules, dims
        self.values = defaultdict(list)
        self.alive: dict[str, dict[int, torch.Tensor]] = defaultdict(dict)
        self.calls: dict[str, int] = {}
        self.handles = []

    def on_fit_start(self, trainer, pl_module):
        self.handles = [m.register_forward_hook(self.hook(name)) for name, m in self.modules.items()]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.calls = dict.fromkeys(self.modules, 0)

    def hook(self, name):
        def record(module, args, out):
            y = out.detach().float()
            dim = self.dims[name] % y.dim()
            positive = y.transpose(dim, -1).reshape(-1, y.shape[dim]).amax(0) > 0
            call = self.calls[name]
            self.calls[name] += 1
            self.alive[name][call] = self.alive[name].get(call, torch.zeros_like(positive)) | positive
            self.values[name].append(y.flatten().clone())
        return record

    def on_fit_end(self, trainer, pl_module):
        for handle in self.handles:
            handle.remove()

    def expected(self, name: str) -> dict[str, float]:
        values = torch.cat(self.values[name]).double()
        alive = torch.cat(list(self.alive[name].values()))
        return {"mean": values.mean().item(), "std": values.std(correction=0).item(),
                "dead_frac": 1.0 - alive.double().mean().item(), "units": alive.numel()}


def assert_activations_match(stats: ActivationStats, probe: ActivationProbe, names: list[str]) -> None:
    (entry,) = stats.history
    for name in names:
        got, want = entry["layers"][name], probe.expected(name)
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-5, abs=1e-7), name
        assert got["std"] == pytest.approx(want["std"], rel=1e-5), name
        assert got["dead_frac"] == pytest.approx(want["dead_frac"], abs=1e-9), name
        assert got["units"] == want["units"], name


# Convolutional networks: torchvision's resnet18 and a resnet50-style Bottleneck stack.

def test_resnet18_gradients_activations_and_forward_order(tmp_path):
    torch.manual_seed(0)
    net = resnet18(num_classes=10)
    with torch.no_grad():  # 16 of the stem's 64 channels dead: BN weight 0, bias -10 before the first ReLU
        net.bn1.weight[:16] = 0.0
        net.bn1.bias[:16] = -10.0
    relus = {name: m for name, m in net.named_modules() if isinstance(m, nn.ReLU)}
    probe = ActivationProbe({f"net.{n}": m for n, m in relus.items()}, dict.fromkeys(map("net.{}".format, relus), 1))
    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0)
    stats, recorder = ActivationStats(every_n_batches=1, plot=False), GradRecorder()
    fit(Foreign(net), images(12), [monitor, stats, NonFiniteGuard(), recorder, probe], tmp_path)

    expected = epoch_average(recorder.steps)
    assert len(monitor.layers) == len(expected) == 41  # 17 + 3 shortcut convs, as many batch norms, fc
    assert_matches(monitor.history[0]["layers"], expected)
    assert monitor.layers[:3] == ["net.conv1", "net.bn1", "net.layer1.0.conv1"] and monitor.layers[-1] == "net.fc"
    i = monitor.layers.index("net.layer2.0.conv1")  # the shortcut runs after the block's second conv
    assert monitor.layers[i:i + 6] == ["net.layer2.0.conv1", "net.layer2.0.bn1", "net.layer2.0.conv2",
                                       "net.layer2.0.bn2", "net.layer2.0.downsample.0", "net.layer2.0.downsample.1"]
    assert list(stats.history[0]["layers"]) == list(probe.modules)  # the stem's relu and one shared per block
    assert_activations_match(stats, probe, list(probe.modules))
    assert stats.history[0]["layers"]["net.relu"]["dead_frac"] >= 0.25
    assert stats.history[0]["layers"]["net.layer1.0.relu"]["units"] == 128  # used twice per block: 2 x 64 channels


def test_bottleneck_relu_at_two_widths_is_counted_per_call(tmp_path):
    torch.manual_seed(0)
    blocks = nn.Sequential(Bottleneck(16, 4), Bottleneck(16, 4))  # each relu runs at 4, 4 and 16 channels
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 3))
    with torch.no_grad():  # 2 channels of the first block's second call dead
        blocks[0].bn2.weight[:2] = 0.0
        blocks[0].bn2.bias[:2] = -10.0
    names = {"net.1.relu": blocks[0].relu, "net.2.relu": blocks[1].relu}
    probe = ActivationProbe(names, dict.fromkeys(names, 1))
    stats = ActivationStats(every_n_batches=1, plot=False)
    fit(Foreign(net), images(9, size=8, classes=3), [stats, probe], tmp_path)  # batches of 4, 4 and 1
    assert_activations_match(stats, probe, list(names))
    layer = stats.history[0]["layers"]["net.1.relu"]
    assert layer["units"] == 24 and layer["unit_dim"] == 1 and layer["dead_frac"] >= 2 / 24


def test_reused_activation_at_two_widths(tmp_path):
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.act = nn.Linear(4, 10), nn.Linear(10, 12), nn.ReLU()
            self.head = nn.Linear(12, 3)

        def forward(self, x):
            return self.head(self.act(self.b(self.act(self.a(x)))))

    torch.manual_seed(0)
    net = Reuse()
    with torch.no_grad():
        net.a.bias[:3] = -100.0  # 3 of 10 dead in the first call
        net.b.bias[:6] = -100.0  # 6 of 12 in the second
    probe = ActivationProbe({"net.act": net.act}, {"net.act": -1})
    stats = ActivationStats(every_n_batches=1, plot=False)
    g = torch.Generator().manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(10, 4, generator=g), torch.randint(0, 3, (10,), generator=g)),
                      batch_size=4)
    fit(Foreign(net), data, [stats, probe], tmp_path)
    assert_activations_match(stats, probe, ["net.act"])
    assert stats.history[0]["layers"]["net.act"]["units"] == 22


# Transformers: nn.TransformerEncoder with an activation module or the string "gelu".

class SequenceClassifier(nn.Module):
    def __init__(self, activation: str | nn.Module = "gelu", batch_first: bool = True, layers: int = 1) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation=activation,
                                           batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head, self.batch_first = nn.Linear(8, 3), batch_first

    def forward(self, x):
        return self.head(self.encoder(x).mean(1 if self.batch_first else 0))


def sequences(batch_first: bool) -> DataLoader:
    """Three batches of lengths 5, 7 and 6, the last one short (3 sequences, not 4)."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for length, size in ((5, 4), (7, 4), (6, 3)):
        x = torch.randn(size, length, 8, generator=g)
        batches.append((x if batch_first else x.transpose(0, 1), torch.randint(0, 3, (size,), generator=g)))
    return DataLoader(batches, batch_size=None)


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_feed_forward_units_are_features_whatever_the_length(tmp_path, batch_first):
    torch.manual_seed(0)
    net = SequenceClassifier(nn.ReLU(), batch_first, layers=2)
    first = net.encoder.layers[0]
    with torch.no_grad():  # features 8..15 of the first layer's feed-forward never positive
        first.linear1.weight[8:] = 0.0
        first.linear1.bias[8:] = -1.0
    names = {f"net.encoder.layers.{i}.activation": layer.activation for i, layer in enumerate(net.encoder.layers)}
    probe = ActivationProbe(names, dict.fromkeys(names, -1))
    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0)
    stats, recorder = ActivationStats(every_n_batches=1, plot=False), GradRecorder()
    fit(Foreign(net), sequences(batch_first), [stats, monitor, recorder, probe], tmp_path)

    assert_activations_match(stats, probe, list(names))
    layer = stats.history[0]["layers"]["net.encoder.layers.0.activation"]
    assert layer["units"] == 16 and layer["unit_dim"] == 2 and layer["dead_frac"] >= 0.5
    # Attention's q/k/v projection is watched; out_proj (used without a call) sorts inside its layer.
    prefix = "net.encoder.layers.0."
    assert monitor.layers[:6] == [prefix + p for p in ("self_attn.in_proj_weight", "self_attn.out_proj", "norm1",
                                                       "linear1", "linear2", "norm2")]
    assert monitor.layers[-1] == "net.head" and len(monitor.layers) == 13
    assert_matches(monitor.history[0]["layers"], epoch_average(recorder.steps))


def test_transformer_swap_takes_effect_on_the_inference_fast_path(tmp_path):
    torch.manual_seed(0)
    model = Foreign(SequenceClassifier(nn.GELU()))
    fit(model, sequences(True), [ActivationSwap([Swap("relu", at_epoch=1, from_kind="gelu")])], tmp_path,
        max_epochs=2)
    layer = model.net.encoder.layers[0]
    assert isinstance(layer.activation, nn.ReLU)
    reference = {}
    for name, activation in (("relu", nn.ReLU()), ("gelu", nn.GELU())):
        other = SequenceClassifier(activation)
        other.load_state_dict(model.net.state_dict())
        reference[name] = other.eval()
    x = torch.randn(4, 6, 8)
    model.eval()
    with torch.no_grad():  # eval + no grad + batch_first: the fast path, which never calls `activation`
        out = model.net(x)
        assert torch.allclose(out, reference["relu"](x), atol=1e-6)
        assert not torch.allclose(out, reference["gelu"](x), atol=1e-3)
        layer.activation_relu_or_gelu = 2  # the flag as construction left it: the fast path computes GELU
        assert torch.allclose(model.net(x), reference["gelu"](x), atol=1e-6)


class CallsRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 3)

    def forward(self, x):
        return torch.relu(self.layer(x))


@pytest.mark.parametrize(("net", "named"), [
    (lambda: SequenceClassifier("gelu"), " (net.encoder.layers.0.activation: gelu in Foreign)"),
    (CallsRelu, ""),  # torch.relu in forward: nothing to name
])  # fmt: skip
def test_functional_activations_are_refused_with_what_to_do(tmp_path, net, named):
    model = Foreign(net())
    trainer = L.Trainer(**QUIET, max_epochs=2, default_root_dir=tmp_path)
    with pytest.raises(ValueError) as stats_error:
        ActivationStats().check_before_run(trainer, model)
    with pytest.raises(ValueError) as swap_error:
        ActivationSwap([Swap("relu", at_epoch=1)]).check_before_run(trainer, model)
    assert "its activations are: none. Change `kinds` or `pattern`. Functional" in str(stats_error.value)
    assert "its activations are: none; change from_kind or pattern. Functional" in str(swap_error.value)
    for error in (stats_error, swap_error):
        assert (f"Functional activations{named}, such as torch.relu(x) or F.gelu(x) called in forward or "
                "nn.TransformerEncoderLayer(activation='gelu'), are not modules, so they cannot be hooked or "
                "swapped: build the model with activation modules instead (self.act = nn.ReLU() called in forward, "
                "activation=nn.GELU()).") in str(error.value)


# Optimization set-ups: manual with two optimizers, bf16-mixed with accumulation and clipping.

class TwoOptimizers(L.LightningModule):
    """Manual optimization: a generator and a critic, each stepped by its own optimizer, GAN-style."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        torch.manual_seed(0)
        self.generator = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
        self.critic = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        g_opt, c_opt = self.optimizers()
        c_loss = self.critic(self.generator(x).detach()).mean() - self.critic(x).mean()
        c_opt.zero_grad()
        self.manual_backward(c_loss)
        c_opt.step()
        g_loss = -self.critic(self.generator(x)).mean()
        g_opt.zero_grad()
        self.manual_backward(g_loss)
        g_opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.generator.parameters(), lr=0.05), torch.optim.Adam(self.critic.parameters())


def test_manual_optimization_with_two_optimizers(tmp_path):
    model = TwoOptimizers()
    monitor, recorder = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0), GradRecorder()
    stats = ActivationStats(every_n_batches=1, plot=False)
    probe = ActivationProbe({"generator.1": model.generator[1], "critic.1": model.critic[1]},
                            {"generator.1": -1, "critic.1": -1})
    data = DataLoader(TensorDataset(torch.randn(12, 4, generator=torch.Generator().manual_seed(0))), batch_size=4)
    fit(model, data, [monitor, stats, NonFiniteGuard(), recorder, probe], tmp_path)
    expected = epoch_average(recorder.steps)
    # The critic's step sees the critic's gradients only (the generator's are zeroed later), and vice versa.
    assert {layer: row["steps"] for layer, row in expected.items()} == dict.fromkeys(
        ["critic.0", "critic.2", "generator.0", "generator.2"], 3)
    assert_matches(monitor.history[0]["layers"], expected)
    assert monitor.layers == ["generator.0", "generator.2", "critic.0", "critic.2"]
    assert stats.history[0]["layers"]["generator.1"]["mean"] == pytest.approx(probe.expected("generator.1")["mean"],
                                                                               rel=1e-5)


@pytest.mark.parametrize("measure_at", ["before_clipping", "after_clipping"])
def test_bf16_mixed_with_accumulation_and_clipping(tmp_path, measure_at):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 8 * 8, 10))
    monitor = GradientFlowMonitor(every_n_steps=1, plot_every_n_epochs=0, measure_at=measure_at)
    recorder = GradRecorder(clip_norm=0.01 if measure_at == "after_clipping" else None)
    stats = ActivationStats(every_n_batches=1, plot=False)
    probe = ActivationProbe({"net.2": net[2]}, {"net.2": 1})
    fit(Foreign(net, lr=0.1), images(16, size=8), [monitor, stats, NonFiniteGuard(), recorder, probe], tmp_path,
        precision="bf16-mixed", accumulate_grad_batches=2, gradient_clip_val=0.01)
    assert monitor.history[0]["step"] == 2 and len(recorder.steps) == 2  # 4 batches of 4, one step per 2
    assert_matches(monitor.history[0]["layers"], epoch_average(recorder.steps))
    assert_activations_match(stats, probe, ["net.2"])  # bf16 outputs, every value of the 4 forwards


# BatchNorm statistics after a skipped step, on resnet18.

class PoisonBatch(Callback):
    """Makes the input of one training batch NaN in place (its forward writes NaN into every BatchNorm) and keeps
    the model's buffers as they were when that batch started."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx, self.before = batch_idx, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.batch_idx:
            batch[0].fill_(float("nan"))
            self.before = {n: b.clone() for n, b in pl_module.named_buffers()}


@pytest.mark.parametrize("action", ["skip", "stop"])
def test_resnet18_batch_norm_statistics_survive_a_bad_step(tmp_path, action):
    torch.manual_seed(0)
    model, poison = Foreign(resnet18(num_classes=10)), PoisonBatch(batch_idx=1)
    guard = NonFiniteGuard(action=action, raise_error=False)
    with pytest.warns(UserWarning, match="loss is nan"):
        fit(model, images(8), [guard, poison], tmp_path)  # batch 1 of 2 is the bad one
    after = dict(model.named_buffers())
    assert all(torch.equal(after[n], b) for n, b in poison.before.items())  # as before the bad batch
    model.eval()
    with torch.no_grad():
        assert model.net(torch.randn(2, 3, 32, 32)).isfinite().all()


# torch.compile and a ResNet swap resumed from a checkpoint keep working.

@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])  # inductor: C++
def test_compiled_submodule_is_named_without_orig_mod(tmp_path, backend):
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    compiled = torch.compile(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), backend=backend)
    compiled._orig_mod.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)),
                      batch_size=4)
    runs = {}
    for name, net in (("plain", plain), ("compiled", compiled)):
        callbacks = [GradientFlowMonitor(plot_every_n_epochs=0, pattern=r"^net\.[02]\.weight$"),
                     ActivationStats(every_n_batches=1, pattern=r"net\.1$", plot=False), NonFiniteGuard(),
                     ActivationSwap([Swap("tanh", at_epoch=1, pattern=r"^net\.1$")])]
        fit(Foreign(net), data, callbacks, tmp_path, max_epochs=2)
        runs[name] = callbacks
    monitor, stats, _, swap = runs["compiled"]
    assert monitor.layers == ["net.0", "net.2"] and list(stats.history[0]["layers"]) == ["net.1"]
    assert swap.history[0]["layers"] == ["net.1"] and isinstance(compiled._orig_mod[1], nn.Tanh)
    for stat in ("mean_abs", "l2", "max_abs", "ratio"):  # the compiled run trains as the plain one
        for layer, values in runs["plain"][0].series(stat).items():
            assert monitor.series(stat)[layer] == pytest.approx(values, rel=1e-5), (layer, stat)
    assert [e["layers"]["net.1"]["mean"] for e in runs["plain"][1].history] == pytest.approx(
        [e["layers"]["net.1"]["mean"] for e in stats.history])


def small_resnet() -> nn.Module:
    """A ResNet of torchvision's BasicBlocks (each with one in-place ReLU used twice) at a width of 8."""
    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         BasicBlock(8, 8), BasicBlock(8, 16, stride=2, downsample=down),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def resnet_swap_run(tmp_path, folder: str, ckpt_path=None) -> L.LightningModule:
    torch.manual_seed(0)
    model = Foreign(small_resnet(), lr=0.05)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / folder, filename="{epoch}", save_top_k=-1)
    trainer = L.Trainer(**{**QUIET, "enable_checkpointing": True}, max_epochs=4, default_root_dir=tmp_path,
                        callbacks=[ActivationSwap([Swap("gelu", at_epoch=2, from_kind="relu")]), checkpoints])
    trainer.fit(model, images(12, size=8), ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize("resume_after_epoch", [0, 2])  # before the swap, after it
def test_resnet_relu_to_gelu_swap_resumes_bitwise(tmp_path, resume_after_epoch):
    full = resnet_swap_run(tmp_path, "full")
    resumed = resnet_swap_run(tmp_path, "resumed", tmp_path / "full" / f"epoch={resume_after_epoch}.ckpt")
    assert [type(m).__name__ for m in resumed.net.modules() if type(m).__name__ in ("ReLU", "GELU")] == ["GELU"] * 3
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not math.isnan(sum(p.sum().item() for p in resumed.parameters()))
