"""L8.c's selection: the best rate on validation (a diverged run never), and epochs to a validation loss."""

from types import SimpleNamespace

import pytest
import yaml

from dlbasics.lessons.optimizers_moons import (
    LRS,
    MOONS,
    NAMES,
    SETTINGS,
    best,
    epochs_to,
)
from dlbasics.lessons.runner import run_config


def fake(name, val_loss, curve=()):
    """A stand-in RunResult: ``evaluate("val")`` gives ``val_loss``, ``curves["val/loss"]`` the curve."""
    return SimpleNamespace(name=name, curves={"val/loss": list(curve)},
                           evaluate=lambda split: {"loss": val_loss, "acc": 0.9})


def test_the_best_rate_is_the_lowest_validation_loss_and_never_a_diverged_run():
    losses = dict(zip(NAMES["Adam"], [0.3, float("nan"), 0.2, float("inf")]))
    results = {name: fake(name, loss) for name, loss in losses.items()}
    assert best(results, "Adam").name == NAMES["Adam"][2]


@pytest.mark.parametrize(("curve", "epochs"), [([0.6, 0.3, 0.24, 0.3], 3), ([0.2, 0.1], 1), ([0.6, 0.5], 3)])
def test_epochs_to_counts_from_one_and_the_budget_plus_one_when_never_reached(curve, epochs):
    assert epochs_to(fake("x", 0.0, curve), 0.25) == epochs


@pytest.mark.parametrize("optimizer", list(SETTINGS))
def test_each_run_gets_its_optimizer_and_weight_decay_not_the_configs(optimizer):
    """The config's AdamW weight_decay 1e-3 would carry over to SGD, RMSprop and Adam when the class changes."""
    config = yaml.safe_load(run_config(MOONS[optimizer, LRS[-1]], 0))
    opt = config["model"]["init_args"]["optimizer"]
    assert opt["class_path"] == "torch.optim." + optimizer.split()[0]
    assert opt["init_args"]["lr"] == LRS[-1]
    assert opt["init_args"]["weight_decay"] == (0.01 if optimizer == "AdamW" else 0.0)
    assert opt["init_args"].get("momentum", 0.0) == (0.9 if "momentum" in optimizer else 0.0)
    assert config["data"]["init_args"]["val_fraction"] == 0.2
