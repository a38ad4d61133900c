from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import GradientFlowMonitor, WeightHistograms
from dlbasics.lessons.runner import Run, build_run, run_seeds


class Net(L.LightningModule):
    """``layers`` Linear layers of width 4 with tanh between them, MSE, plain SGD: a model that is not ours."""

    def __init__(self, layers: int = 2) -> None:
        super().__init__()
        sizes = [3] + [4] * (layers - 1) + [2]
        blocks = [m for i in range(layers) for m in (nn.Linear(sizes[i], sizes[i + 1]), nn.Tanh())][:-1]
        self.net = nn.Sequential(*blocks)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    x = torch.linspace(-1, 1, 18).reshape(6, 3)  # 6 points, 3 batches of 2: 3 steps per epoch
    return DataLoader(TensorDataset(x, torch.stack([x.sum(1), x[:, 0] * x[:, 1]], 1)), batch_size=2)


class Recorder(L.Callback):
    """Records each step's weights and gradients before its update (what the callback under test is checked against)."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []
        self.grads: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.weights.append({n: p.detach().clone() for n, p in pl_module.named_parameters()})
        self.grads.append({n: p.grad.detach().clone() for n, p in pl_module.named_parameters()})


def fit(tmp_path: Path, callback: WeightHistograms, layers: int = 2, epochs: int = 4, logger=None, extra=()):
    torch.manual_seed(0)
    model = Net(layers)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=logger or TensorBoardLogger(tmp_path, name="h"),
                        callbacks=[callback, *extra], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(model, loader())
    return model, trainer


def histograms(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"histograms": 0})  # 0: keep every histogram
    events.Reload()
    return events


def assert_same_values(histogram, tensor: torch.Tensor) -> None:
    values = tensor.detach().double().flatten()
    assert histogram.num == values.numel()
    assert histogram.min == pytest.approx(float(values.min()), abs=1e-6)
    assert histogram.max == pytest.approx(float(values.max()), abs=1e-6)
    assert histogram.sum == pytest.approx(float(values.sum()), abs=1e-5)
    assert histogram.sum_squares == pytest.approx(float((values ** 2).sum()), abs=1e-5)


def test_one_histogram_per_layer_per_logged_epoch_with_the_weights_and_last_gradients(tmp_path):
    torch.manual_seed(0)
    initial = {n: p.detach().clone() for n, p in Net(2).named_parameters()}  # fit() seeds the same way
    recorder = Recorder()
    _, trainer = fit(tmp_path, WeightHistograms(every_n_epochs=2, bins=10), extra=[recorder])
    events = histograms(trainer.logger.log_dir)
    labels = {"net.0": "linear1 (net.0)", "net.2": "linear2 (net.2)"}
    assert sorted(events.Tags()["histograms"]) == sorted(f"{g}/{label}" for g in ("weights", "gradients")
                                                         for label in labels.values())
    train_steps = [e.step for e in EventAccumulator(trainer.logger.log_dir).Reload().Scalars("train/loss")]
    assert train_steps == [2, 5, 8, 11]  # each epoch's last step
    for name, label in labels.items():
        weights, gradients = events.Histograms(f"weights/{label}"), events.Histograms(f"gradients/{label}")
        # The initial weights at step 0; epochs 0, 1 and 3 (3 steps each) at their last steps, 2, 5 and 11, where
        # Lightning logs their train/ metrics.
        assert [e.step for e in weights] == [0, 2, 5, 11] and [e.step for e in gradients] == [2, 5, 11]
        assert_same_values(weights[0].histogram_value, initial[f"{name}.weight"])
        for event in weights[1:]:  # the weights that step's forward used, and its gradients: not the first step's
            assert_same_values(event.histogram_value, recorder.weights[event.step][f"{name}.weight"])
        for event in gradients:
            assert_same_values(event.histogram_value, recorder.grads[event.step][f"{name}.weight"])
            assert len(event.histogram_value.bucket) <= 10 + 1  # the writer adds an empty one at the left edge


def test_full_batch_training_logs_the_initial_weights_once(tmp_path):
    x = torch.linspace(-1, 1, 18).reshape(6, 3)
    full = DataLoader(TensorDataset(x, x[:, :2]), batch_size=6)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=TensorBoardLogger(tmp_path), enable_progress_bar=False,
                        callbacks=[WeightHistograms()], enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(Net(), full)
    events = histograms(trainer.logger.log_dir)
    assert [e.step for e in events.Histograms("weights/linear1 (net.0)")] == [0, 1]  # epoch 0 is the initial weights
    assert [e.step for e in events.Histograms("gradients/linear1 (net.0)")] == [0, 1]


def test_layers_are_named_as_gradient_flow_names_them(tmp_path):
    callback, flow = WeightHistograms(), GradientFlowMonitor(plot_every_n_epochs=0)
    fit(tmp_path, callback, layers=3, epochs=1, extra=[flow])
    assert callback.labels == flow.labels == {"net.0": "linear1 (net.0)", "net.2": "linear2 (net.2)",
                                              "net.4": "linear3 (net.4)"}


def test_a_bounded_number_of_layers_first_and_last_kept(tmp_path):
    callback = WeightHistograms(max_layers=3, gradients=False, log_initial=False)
    _, trainer = fit(tmp_path, callback, layers=6, epochs=1)
    assert callback.layers == ["net.0", "net.4", "net.10"]  # of net.0, net.2, ..., net.10
    assert sorted(histograms(trainer.logger.log_dir).Tags()["histograms"]) == [  # numbered among all 6 linears
        "weights/linear1 (net.0)", "weights/linear3 (net.4)", "weights/linear6 (net.10)"]


def test_biases_module_and_pattern_select_the_layers(tmp_path):
    callback = WeightHistograms(include_bias=True, module="net", pattern=r"^2\b", gradients=False)
    fit(tmp_path, callback, epochs=1)
    assert callback.layers == ["2", "2.bias"]
    assert callback.labels == {"2": "linear1 (2)", "2.bias": "linear1 (2.bias)"}


def test_without_a_tensorboard_logger_it_warns_and_writes_nothing(tmp_path):
    with pytest.warns(UserWarning, match="WeightHistograms needs a logger with a TensorBoard SummaryWriter"):
        fit(tmp_path, WeightHistograms(), epochs=1, logger=CSVLogger(tmp_path))
    assert not list(tmp_path.rglob("events.out.tfevents*"))


def test_a_subfolder_is_a_run_of_its_own(tmp_path):
    _, trainer = fit(tmp_path, WeightHistograms(subfolder="part", gradients=False), epochs=1)
    assert histograms(trainer.logger.log_dir).Tags()["histograms"] == []
    assert len(histograms(Path(trainer.logger.log_dir) / "part").Tags()["histograms"]) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"every_n_epochs": 0}, "every_n_epochs 0 must be an integer >= 1"),
    ({"bins": 1}, "bins 1 must be an integer >= 2"),
    ({"max_layers": 0}, "max_layers 0 must be an integer >= 1"),
    ({"pattern": "("}, "pattern"),
    ({"subfolder": "../elsewhere"}, "subfolder '../elsewhere' must be a relative folder"),
    ({"subfolder": "/tmp/x"}, "subfolder '/tmp/x' must be a relative folder"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        WeightHistograms(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"module": "encoder"}, "module 'encoder' is not a submodule of the Net; its submodules are: net, net.0"),
    ({"pattern": "conv"}, "no trainable weight parameter matching pattern 'conv'; the trainable parameters are: "
                          "net.0.weight"),
])
def test_settings_that_select_nothing_are_refused_before_the_run(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WeightHistograms(**kwargs).check_before_run(None, Net())


def test_the_first_seed_of_a_seed_ensemble_gets_the_tags_and_values_of_its_solo_run(tmp_path):
    """Seeds trained side by side: the first logs into <run>/seeds/seed_<s>/ what its solo run logs into
    <run>/seed_<s>/; the others log none (a TensorBoard run per seed would pass its 40 runs in a lesson)."""
    run = Run("deep", "deep_sigmoid.yaml", ("--trainer.max_epochs=2", "--trainer.callbacks=[]"))
    callback = WeightHistograms(bins=8)
    initial = dict(build_run(run, tmp_path / "built", 1).model.named_parameters())["network.layers.0.weight"]
    ensemble = run_seeds(run, tmp_path / "together", [1, 2], [callback])
    solo = run_seeds(run, tmp_path / "alone", [1], [callback])
    assert ensemble.results[0].log_dir.name == "seeds"  # the two seeds were one fit
    assert not (tmp_path / "together" / "deep" / "seeds" / "seed_2").exists()
    together = histograms(tmp_path / "together" / "deep" / "seeds" / "seed_1")
    alone = histograms(solo.first.log_dir)
    tags = sorted(together.Tags()["histograms"])
    assert tags == sorted(alone.Tags()["histograms"]) and len(tags) == 2 * 7  # 6 hidden + output, weights and grads
    for tag in tags:
        for mine, theirs in zip(together.Histograms(tag), alone.Histograms(tag), strict=True):
            assert mine.step == theirs.step
            assert mine.histogram_value.sum == pytest.approx(theirs.histogram_value.sum, abs=1e-5)
    assert "weights/linear1 (network.layers.0)" in tags  # named as in a solo run, not members.1.network...
    assert_same_values(together.Histograms("weights/linear1 (network.layers.0)")[0].histogram_value, initial)
    # The first seed's result keeps its callback (watching its member), as after a solo run; the other has none.
    assert ensemble.results[0].callback(WeightHistograms).module == "members.0"
    assert not any(isinstance(c, WeightHistograms) for c in ensemble.results[1].callbacks)
    assert callback.module is None and callback.subfolder is None  # the lesson's own callback is left as it was
