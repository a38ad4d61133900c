"""BF16WhereNative: bf16 autocast where the device computes bf16 natively, fp32 elsewhere."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.nn import functional as F

from dlbasics import precision
from dlbasics.callbacks import (ActivationStats, ConfusionMatrix, FeatureMaps, GradientFlowMonitor,
                                Misclassified)
from dlbasics.lessons.basics import CNN
from dlbasics.lessons.runner import run_lesson_run
from dlbasics.lightning_cli import cli_main
from dlbasics.precision import BF16WhereNative, native_bf16_on

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ZEN4 = {"avx2", "fma", "avx512f", "avx512_bf16"}
SAPPHIRE_RAPIDS = {"avx2", "avx512f", "amx_tile", "amx_bf16"}
GRAVITON3 = {"asimd", "bf16", "i8mm", "sve"}


@pytest.mark.parametrize("flags, found", [(ZEN4, "avx512_bf16"), (SAPPHIRE_RAPIDS, "amx_bf16"),
                                          (GRAVITON3, "bf16")])
def test_a_cpu_with_a_bf16_flag_has_native_bf16_and_the_reason_names_the_flag(flags, found):
    native, reason = native_bf16_on("cpu", flags)
    assert native and f"({found} in its feature flags)" in reason


def test_a_cpu_without_one_does_not_and_the_reason_says_bf16_would_be_emulated():
    native, reason = native_bf16_on("cpu", {"avx2", "fma", "avx512f", "avx512_vnni"})  # AVX-512 alone is not bf16
    assert not native
    assert "no native bf16" in reason and "emulated, slower than fp32" in reason


def test_devices_it_cannot_check_get_fp32():
    assert native_bf16_on("mps") == (False, "dlbasics does not detect native bf16 on 'mps' devices")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer without a GPU")
def test_cuda_without_a_gpu_gets_fp32():
    assert native_bf16_on("cuda")[0] is False


class DtypeProbe(L.LightningModule):
    """A linear regression that records the dtype of its layer's output in each stage."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.seen: dict[str, torch.dtype] = {}

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        out = self.layer(x)
        self.seen[stage] = out.dtype
        return F.mse_loss(out.float(), y)

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> torch.utils.data.DataLoader:
    x = torch.randn(16, 4)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


@pytest.mark.parametrize("flags, chosen, dtype", [(ZEN4, "bf16-mixed", torch.bfloat16),
                                                  ({"avx2", "fma"}, "32-true", torch.float32)])
def test_the_plugin_autocasts_every_stage_to_bf16_only_where_the_cpu_has_it(make_trainer, monkeypatch, caplog,
                                                                            flags, chosen, dtype):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    model, plugin = DtypeProbe(), BF16WhereNative()
    trainer = make_trainer(max_epochs=1, plugins=[plugin])
    with caplog.at_level(logging.INFO):
        trainer.fit(model, loader(), loader())
    assert trainer.precision == chosen and model.seen == {"train": dtype, "val": dtype}
    assert model.layer.weight.dtype == torch.float32  # mixed: the weights and the optimizer stay fp32
    assert f"Precision {chosen} (BF16WhereNative): this CPU has" in caplog.text
    assert repr(plugin).startswith(f"BF16WhereNative(chose '{chosen}': this CPU has")


def test_before_a_run_it_says_nothing_is_decided():
    plugin = BF16WhereNative()
    assert plugin.precision == "32-true" and repr(plugin) == (
        "BF16WhereNative(undecided: it chooses when the trainer sets up the model)")


def test_the_cnn_config_trains_with_it_and_a_user_can_name_a_precision_instead():
    config = ["--config", str(CONFIGS / "mnist_cnn.yaml")]
    assert isinstance(cli_main(config, run=False).trainer.precision_plugin, BF16WhereNative)
    chosen = cli_main([*config, "--trainer.plugins=null", "--trainer.precision=bf16-mixed"], run=False).trainer
    assert type(chosen.precision_plugin).__name__ == "MixedPrecision" and chosen.precision == "bf16-mixed"
    with pytest.raises(ValueError, match=r"Received both `precision=32-true` and `plugins=BF16WhereNative\(.*Choose"):
        cli_main([*config, "--trainer.precision=32-true"], run=False)


def test_the_cnn_lesson_run_and_its_diagnostics_work_in_bf16(fake_mnist, tmp_path):
    # Forced bf16 on any CPU (emulated where not native): what a CPU with native bf16 runs under BF16WhereNative.
    # Activations are bf16 there; the figure and statistics callbacks must read them (numpy has no bfloat16).
    run = dataclasses.replace(CNN, overrides=("--trainer.plugins=null", "--trainer.precision=bf16-mixed",
                                              "--trainer.max_epochs=1", "--trainer.limit_train_batches=4",
                                              "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2"))
    callbacks = [FeatureMaps(n_inputs=2), ActivationStats(every_n_batches=1, log_histograms=True),
                 GradientFlowMonitor(), ConfusionMatrix(stage="test"), Misclassified(stage="test", n_wrong=2, n_right=2)]
    result = run_lesson_run(run, tmp_path / "lesson", seed=0, callbacks=callbacks, data_dir=fake_mnist)
    assert result.model.trainer.precision == "bf16-mixed"
    assert all(math.isfinite(result.last(name)) for name in ("train/loss", "val/loss", "test/loss", "test/acc"))
    figures = " ".join(path.name for path in result.log_dir.rglob("*.png"))
    for figure in ("feature_maps_network.features.0_test", "confusion_matrix_test", "misclassified",
                   "activations_over_time", "gradient_flow_epoch000"):
        assert figure in figures, figures
    events = EventAccumulator(str(result.log_dir), size_guidance={"scalars": 0, "histograms": 0}).Reload()
    tags = events.Tags()
    means = [tag for tag in tags["scalars"] if tag.startswith("act/") and tag.endswith("/mean")]
    assert len(means) == 3 and any(tag.startswith("act/") for tag in tags["histograms"]), tags  # 3 ReLUs
    assert all(math.isfinite(event.value) for tag in means for event in events.Scalars(tag))
    assert any(tag.startswith("grad/") for tag in tags["scalars"]), tags
