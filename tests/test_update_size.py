"""UpdateSizeMonitor: how far each optimizer step moves each weight matrix, per input column, on any module."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import UpdateSizeMonitor


class Plain(L.LightningModule):
    def __init__(self, optimizer: str, lr: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
        self.optimizer, self.lr = optimizer, lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return getattr(torch.optim, self.optimizer)(self.parameters(), lr=self.lr)


def scaled_data() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    y = (x.sum(1) > 0).long()
    return DataLoader(TensorDataset(x * torch.tensor([100.0, 1.0]), y), batch_size=64)


def fit(model, callbacks, steps=5):
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    trainer.fit(model, scaled_data())


class FirstStep(L.Callback):
    """The first layer's weights before the first step and their gradient then: SGD's step is lr * grad."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == 0:
            self.grad = pl_module.net[0].weight.grad.detach().clone()


def test_sgd_steps_are_lr_times_the_gradient_per_column():
    torch.manual_seed(0)
    monitor, probe = UpdateSizeMonitor(), FirstStep()
    fit(Plain("SGD", 0.01), [monitor, probe])
    assert [e["step"] for e in monitor.history] == [0, 1, 2, 3, 4]
    assert set(monitor.history[0]["layers"]) == {"net.0.weight", "net.2.weight"}  # no biases
    expected = (0.01 * probe.grad).abs().mean(dim=0)  # (4, 2) -> per input column
    assert monitor.history[0]["layers"]["net.0.weight"] == pytest.approx(expected.tolist(), rel=1e-5)
    ratio = monitor.series("net.0.weight", 0)[0] / monitor.series("net.0.weight", 1)[0]
    assert ratio > 10  # the column of the 100x feature takes the much larger step


def test_adams_first_step_is_lr_for_every_weight_whatever_its_gradient():
    torch.manual_seed(0)
    monitor = UpdateSizeMonitor()
    fit(Plain("Adam", 0.01), [monitor], steps=1)
    # Adam's first step is lr * g / (|g| + eps): lr for every weight with a gradient well above eps.
    assert monitor.history[0]["layers"]["net.0.weight"] == pytest.approx([0.01, 0.01], rel=1e-3)


def test_sampling_every_n_steps_and_refusing_a_bad_setting():
    monitor = UpdateSizeMonitor(every_n_steps=2)
    fit(Plain("SGD", 0.01), [monitor])
    assert [e["step"] for e in monitor.history] == [0, 2, 4]
    with pytest.raises(ValueError, match="every_n_steps 0"):
        UpdateSizeMonitor(every_n_steps=0)
