"""Every checkpoint the project writes loads without unpickling code, and restores a model that predicts the same.

Runs the real ``dlbasics fit`` with every callback that keeps state in checkpoints and an LR scheduler, so the
checkpoints hold all the project can put in them.
"""

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback
from reliability_probes import ROOT, scaled_config

import dlbasics.callbacks
from dlbasics.lightning_cli import cli_main

# Every project callback with a state_dict, as a config gives it (test_every_stateful_callback_is_listed_here).
STATEFUL_CALLBACKS = [
    {"class_path": "dlbasics.callbacks.ActivationSwap",  # leaky_relu 0.2: the slope must come back too
     "init_args": {"schedule": [{"at_epoch": 1, "to": "leaky_relu", "negative_slope": 0.2}]}},
    {"class_path": "dlbasics.callbacks.ActivationStats", "init_args": {"plot": False}},
    {"class_path": "dlbasics.callbacks.GradientFlowMonitor", "init_args": {"plot_every_n_epochs": 0}},
    {"class_path": "dlbasics.callbacks.NonFiniteGuard"},
    {"class_path": "dlbasics.callbacks.RNGStateCheckpoint"},
    {"class_path": "dlbasics.callbacks.UpdateSizeMonitor"},
]
EVERY_EPOCH = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
               "init_args": {"save_top_k": -1, "every_n_epochs": 1, "filename": "{epoch}", "save_last": True}}
SCHEDULER = {"class_path": "torch.optim.lr_scheduler.ReduceLROnPlateau", "init_args": {"factor": 0.5, "patience": 0}}


def class_of(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_stateful_callback_is_listed_here():
    found, modules = set(), []
    for info in pkgutil.walk_packages(dlbasics.callbacks.__path__, "dlbasics.callbacks."):  # subpackages too
        modules.append(info.name)
        for _, cls in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
            if issubclass(cls, Callback) and cls.__module__ == info.name and cls.state_dict is not Callback.state_dict:
                found.add(cls)
    assert {"dlbasics.callbacks.diagnostics.gradient_flow", "dlbasics.callbacks.runtime.rng_state"} <= set(modules)
    assert found == {class_of(entry["class_path"]) for entry in STATEFUL_CALLBACKS}


def extra_config(folder: Path) -> Path:
    path = folder / "stateful.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [EVERY_EPOCH, *STATEFUL_CALLBACKS]},
                                    "model": {"init_args": {"lr_scheduler": SCHEDULER}}}))
    return path


def first_test_samples(datamodule, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` test samples as the model receives them (MNIST's uint8 images become float)."""
    x, y = (t[:limit] for t in datamodule.split("test"))
    return (datamodule.to_float(x) if hasattr(datamodule, "to_float") else x), y


@pytest.mark.parametrize("config", ["moons_mlp", "sine_tinynet", pytest.param("mnist_cnn", marks=pytest.mark.slow)])
def test_checkpoints_load_weights_only_and_predict_like_the_trained_model(config, tmp_path, fake_mnist):
    data = ["--data.init_args.data_dir", str(fake_mnist), "--data.init_args.val_size", "200",
            "--data.init_args.eval_batch_size", "100", "--trainer.limit_test_batches", "2"] if "mnist" in config else []
    args = ["--config", str(scaled_config(ROOT / "configs" / f"{config}.yaml", tmp_path)),
            "--config", str(extra_config(tmp_path)), "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "2", "--trainer.enable_model_summary", "false", *data]
    cli = cli_main(["fit", *args])
    checkpoints = sorted(Path(cli.trainer.log_dir, "checkpoints").glob("*.ckpt"))
    assert [p.name for p in checkpoints] == ["epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt"]
    for checkpoint in checkpoints:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint) == [], checkpoint.name
        state = torch.load(checkpoint, weights_only=True)
        saved = {key.partition("{")[0] for key in state["callbacks"]}  # a state_key may add "{settings}"
        assert {class_of(e["class_path"]).__qualname__ for e in STATEFUL_CALLBACKS} <= saved
        assert state["lr_schedulers"] and state["optimizer_states"]

    # The model as trained, with the swapped activations (leaky_relu 0.2 instead of the config's).
    loaded = type(cli.model).load_from_checkpoint(checkpoints[-1], weights_only=True)
    assert [type(m) for m in loaded.modules()] == [type(m) for m in cli.model.modules()]
    assert {m.negative_slope for m in loaded.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.2}
    x, y = first_test_samples(cli.datamodule, 200 if "mnist" in config else None)  # limit_test_batches 2 of 100
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), cli.model.eval()(x))

    # `dlbasics test --ckpt_path` evaluates that same network.
    tested = cli_main(["test", *args, "--ckpt_path", str(checkpoints[-1])])
    with torch.no_grad():
        expected = cli.model.loss(cli.model(x), y).item()
    assert tested.trainer.callback_metrics["test/loss"].item() == pytest.approx(expected, rel=1e-5)
