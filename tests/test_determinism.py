"""The same config and seed give the same run, bit for bit on CPU; another seed gives another run."""

from pathlib import Path

import pytest
import torch
from reliability_probes import ROOT, scaled_config, scalars

from dlbasics.lightning_cli import cli_main

SHORT = ["--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "3",
         "--trainer.enable_model_summary", "false"]


def run(config: str, folder: Path, name: str, *extra: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Fit a scaled-down copy of ``configs/<config>.yaml``; return the final weights and every logged scalar."""
    path = scaled_config(ROOT / "configs" / f"{config}.yaml", folder)
    cli = cli_main(["fit", "--config", str(path), *SHORT, "--trainer.logger.init_args.name", name, *extra])
    return cli.model.state_dict(), scalars(cli.trainer.log_dir)


def assert_same(a, b, val: str = "val_on_test") -> None:
    """Same weights and scalars; ``val``: the tag group of the validation metrics (moons validates on its test
    split, MNIST on a validation split)."""
    (weights_a, scalars_a), (weights_b, scalars_b) = a, b
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[key], weights_b[key]) for key in weights_a)
    assert scalars_a == scalars_b and {"train/loss", f"{val}/loss", f"{val}/acc"} <= scalars_a.keys()


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    """Two runs of the moons config (BatchNorm, dropout 0.1, shuffled batches) with seed 0."""
    folder = tmp_path_factory.mktemp("determinism")
    return folder, run("moons_mlp", folder, "a"), run("moons_mlp", folder, "b")


def test_same_config_and_seed_give_identical_runs(moons):
    _, a, b = moons
    assert_same(a, b)


@pytest.mark.slow
def test_same_seed_on_mnist_cnn_gives_identical_runs(tmp_path, fake_mnist):
    data = ["--data.init_args.data_dir", str(fake_mnist), "--data.init_args.val_size", "500",
            "--data.init_args.eval_batch_size", "100", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "2"]  # the CNN is the slow part: 4 steps, 200 validation images
    assert_same(run("mnist_cnn", tmp_path, "a", *data), run("mnist_cnn", tmp_path, "b", *data), val="val")


@pytest.mark.parametrize("seed", ["--seed_everything", "--data.init_args.seed"], ids=["weights", "data"])
def test_another_seed_gives_other_weights_and_metrics(moons, seed):
    folder, (weights, logged), _ = moons
    other_weights, other_logged = run("moons_mlp", folder, f"other_{seed}", seed, "1")
    assert not torch.equal(weights["network.layers.0.weight"], other_weights["network.layers.0.weight"])
    for tag in ("train/loss", "val_on_test/loss"):
        assert logged[tag] != other_logged[tag], tag
