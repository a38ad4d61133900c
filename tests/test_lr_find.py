"""``dlbasics lr-find`` (issue 11): Lightning's range test on a config's own model, data and optimizer class.

What is checked from inside Lightning's ``_lr_find`` (a spy on the step where it puts the trainer back, after the
sweep and before it reloads the weights): the optimizer it trained with, and that the weights did move. What is
checked from outside: the weights after ``lr-find`` are bitwise those before, its checkpoint is gone, the plot and
the numbers are in the run folder, and bad settings are refused in one line with no run folder left.
"""

import json
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.tuner import lr_finder
from reliability_probes import ROOT

from dlbasics import lr_find
from dlbasics.cli import main
from dlbasics.lightning_cli import cli_main
from dlbasics.models import Classifier

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TINY = ROOT / "configs" / "tiny_activation.yaml"  # full batch: one step an epoch
QUIET = ["--trainer.enable_progress_bar", "false"]
SUGGESTION = re.compile(r"Suggested learning rate: (\S+)")


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


@pytest.fixture
def spy(monkeypatch):
    """``seen``: the weights before and after ``find_learning_rate``, and, from inside Lightning's finder, the
    optimizer it swept and the weights it reached before restoring them."""
    seen = {}
    restore = getattr(lr_finder, "__lr_finder_restore_params")

    def restore_and_record(trainer, params):
        optimizer = trainer.strategy.optimizers[0]
        seen["optimizer"] = (type(optimizer), [dict(group, params=None) for group in optimizer.param_groups])
        seen["trained"] = state(trainer.lightning_module)
        restore(trainer, params)

    find = lr_find.find_learning_rate

    def find_and_record(trainer, model, datamodule, test):
        seen["before"] = state(model)
        result = find(trainer, model, datamodule, test)
        seen["after"] = state(model)
        return result

    monkeypatch.setattr(lr_finder, "__lr_finder_restore_params", restore_and_record)
    monkeypatch.setattr(lr_find, "find_learning_rate", find_and_record)
    return seen


def bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def run_folders(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("lightning_logs/*/version_*"))


def test_lr_find_command_prints_a_suggestion_saves_the_plot_and_restores_the_weights(tmp_path, monkeypatch, capsys,
                                                                                    spy):
    monkeypatch.chdir(tmp_path)  # the finder writes its checkpoint in default_root_dir: the working directory
    status = main(["lr-find", "--config", str(TINY), "--num_training", "30", "--min_lr", "1e-4", "--max_lr", "1",
                   "--trainer.max_epochs", "5", *QUIET])
    out = capsys.readouterr().out
    assert status == 0, out
    suggestion = float(SUGGESTION.search(out).group(1))
    assert 1e-4 <= suggestion <= 1
    [folder] = run_folders(tmp_path)
    assert folder.parent.name == "tiny_activation" and (folder / "config.yaml").exists()
    assert (folder / "figures" / "lr_find.png").stat().st_size > 10_000
    numbers = json.loads((folder / "lr_find.json").read_text())
    # 30 steps although the config's data is one batch and --trainer.max_epochs 5: the finder isn't cut short.
    assert len(numbers["lrs"]) == len(numbers["losses"]) == 30
    assert numbers["lrs"][0] == pytest.approx(1e-4) and numbers["lrs"][-1] == pytest.approx(1.0)
    assert numbers["suggestion"] == pytest.approx(suggestion, rel=5e-3) and numbers["optimizer"] == "Adam"
    assert numbers["settings"]["num_training"] == 30 and numbers["settings"]["mode"] == "exponential"
    # The sweep trained the weights; lr-find put them back bit for bit, and removed its checkpoint.
    assert not bitwise_equal(spy["trained"], spy["before"])
    assert bitwise_equal(spy["after"], spy["before"])
    assert list(tmp_path.rglob("*.ckpt")) == []


@pytest.mark.parametrize(("config", "args", "optimizer", "kept"), [
    (TINY, [], torch.optim.Adam, {"betas": (0.9, 0.999)}),
    (TINY, ["--model.init_args.optimizer", "torch.optim.SGD", "--model.init_args.optimizer.init_args.momentum",
            "0.9", "--model.init_args.optimizer.init_args.weight_decay", "0.01"], torch.optim.SGD,
     {"momentum": 0.9, "weight_decay": 0.01}),
    (ROOT / "configs" / "sine_tinynet.yaml", [], torch.optim.SGD, {"momentum": 0.0}),
], ids=["adam_config", "sgd_override", "sgd_config"])
def test_the_range_test_sweeps_the_configured_optimizer(config, args, optimizer, kept, tmp_path, monkeypatch, spy):
    monkeypatch.chdir(tmp_path)
    cli = cli_main(["--config", str(config), *args, *QUIET], run=False)
    result = lr_find.find_learning_rate(cli.trainer, cli.model, cli.datamodule, lr_find.RangeTest(num_training=13))
    swept, groups = spy["optimizer"]
    assert swept is optimizer and result.optimizer == optimizer.__name__
    for name, value in kept.items():  # only the learning rate is swept; the rest is the config's
        assert all(group[name] == value for group in groups)
    assert groups[0]["lr"] >= result.lrs[-1] == pytest.approx(1.0)  # the sweep's, not the config's (one step on)
    assert bitwise_equal(spy["after"], spy["before"])


class NoOptimizer(Classifier):
    """A model whose configure_optimizers returns None (Lightning then trains with a stand-in that does nothing)."""

    def configure_optimizers(self):
        return None


# id: (arguments, what the one-line message says)
BAD = {
    "min_lr_not_below_max_lr": (["--min_lr", "0.1", "--max_lr", "0.1"], r"min_lr 0.1 must be smaller than max_lr 0.1"),
    "min_lr_zero": (["--min_lr", "0"], r"min_lr 0.0 and max_lr 1.0 must both be positive"),
    "max_lr_negative": (["--min_lr", "-0.001", "--max_lr=-1e-4"], r"min_lr -0.001 and max_lr -0.0001 must both be"),
    "num_training_1": (["--num_training", "1"], r"num_training 1 must be an integer >= 13: the suggestion skips"),
    "num_training_text": (["--num_training", "many"], r"argument --num_training: invalid int value: 'many'"),
    "mode": (["--mode", "cubic"], r"mode 'cubic' is not one of: exponential, linear"),
    "early_stop_threshold": (["--early_stop_threshold", "0.5"], r"early_stop_threshold 0.5 must be a finite number >= 1"),
    "optimizer_null": (["--model.init_args.optimizer", "null"], r"optimizer None must be a class or a factory"),
    "no_optimizer": (["--model", f"{__name__}.NoOptimizer"],
                     r"NoOptimizer.configure_optimizers returned no optimizer; give the model one"),
    "fast_dev_run": (["--trainer.fast_dev_run", "true"], r"can't run with trainer.fast_dev_run"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_in_one_line_with_no_run_folder(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args, expected = BAD[case]
    assert main(["lr-find", "--config", str(TINY), *QUIET, *args]) == 2
    err = capsys.readouterr().err
    first, hint = err.strip().splitlines()
    assert first.startswith("dlbasics lr-find: error: ") and re.search(expected, first), err
    assert hint == "(add --debug for the full traceback)"
    assert run_folders(tmp_path) == [] and list(tmp_path.rglob("*.ckpt")) == []


def test_a_sweep_stopped_too_early_for_a_suggestion_says_so_and_keeps_the_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # Threshold 1: stop once the smoothed loss is above its best: at step 2, as Lightning's smoothing starts low.
    assert main(["lr-find", "--config", str(TINY), "--early_stop_threshold", "1", *QUIET]) == 1
    out = capsys.readouterr().out
    stopped = re.search(r"Stopped after \d+ of 100 steps: .* at learning rate (\S+), where training starts to "
                        r"diverge", out)
    assert stopped and "No suggestion: " in out, out
    [folder] = run_folders(tmp_path)
    numbers = json.loads((folder / "lr_find.json").read_text())
    assert numbers["suggestion"] is None and 2 <= len(numbers["lrs"]) < 13
    assert float(stopped.group(1)) == pytest.approx(numbers["lrs"][-1], rel=1e-2)  # the last rate it reached
    assert (folder / "figures" / "lr_find.png").exists()


def test_linear_mode_steps_the_learning_rate_evenly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["lr-find", "--config", str(TINY), "--mode", "linear", "--min_lr", "0.01", "--max_lr", "0.5",
                 "--num_training", "20", *QUIET]) == 0
    suggestion = float(SUGGESTION.search(capsys.readouterr().out).group(1))
    [folder] = run_folders(tmp_path)
    lrs = json.loads((folder / "lr_find.json").read_text())["lrs"]
    steps = torch.tensor(lrs).diff()[1:]  # Lightning's first step is twice the others (its PR 21931)
    assert torch.allclose(steps, torch.full_like(steps, 0.49 / 20), rtol=1e-4)
    assert 0.01 <= suggestion <= 0.5


def test_help_lists_the_range_test_options_with_lightnings_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["lr-find", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for option, default in (("--min_lr", "1e-08"), ("--max_lr", "1"), ("--num_training", "100"),
                            ("--mode", "exponential"), ("--early_stop_threshold", "4")):
        assert re.search(rf"{option} \S+\s+.*\(default: {re.escape(default)}\)", " ".join(out.split())), out
    assert main(["--help"]) == 0 and "lr-find" in capsys.readouterr().out


def test_suggestion_is_the_steepest_fall_per_decade_where_lightnings_is_per_unit_lr():
    # A flat loss with noise of 1e-4 up to 1e-4, then a fall centred on 1e-2: the real fall is at 1e-2.
    lrs = torch.logspace(-8, 0, 100, dtype=torch.float64)
    noise = 1e-4 * torch.sin(torch.arange(100, dtype=torch.float64) * 2.0)
    losses = 1.0 - 0.5 * torch.sigmoid(4 * (lrs.log10() + 2)) + noise * (lrs < 1e-4)
    lrs, losses = lrs.tolist(), losses.tolist()
    ours = lr_find.steepest_fall(lrs, losses, log_x=True)
    lightning = lr_finder._LRFinder("exponential", lrs[0], lrs[-1], 100)
    lightning.results = {"lr": lrs, "loss": losses}
    assert 10 ** -2.3 < ours < 10 ** -1.7
    assert lightning.suggestion() < 1e-4  # the noise, which per unit of lr is steep
    # In linear mode both take the slope per unit of learning rate: the same pick.
    linear = torch.linspace(1e-3, 1, 50, dtype=torch.float64).tolist()
    falling = [1 / (1 + (lr / 0.3) ** 4) for lr in linear]
    lightning.results = {"lr": linear, "loss": falling}
    assert lr_find.steepest_fall(linear, falling, log_x=False) == lightning.suggestion()


def config_args(config: Path, fake_mnist: Path) -> list[str]:
    if "mnist" in config.name:
        return ["--data.init_args.data_dir", str(fake_mnist), "--data.init_args.val_size", "100"]
    return []


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_lr_find_works_on_every_config(config, tmp_path, monkeypatch, capsys, fake_mnist, spy):
    monkeypatch.chdir(ROOT if config.stem == "csv_classifier" else tmp_path)  # its CSV path is relative to ROOT
    status = main(["lr-find", "--config", str(config), "--num_training", "20", *QUIET,
                   "--trainer.logger.init_args.save_dir", str(tmp_path / "lightning_logs"),
                   "--trainer.default_root_dir", str(tmp_path), *config_args(config, fake_mnist)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert 1e-8 <= float(SUGGESTION.search(out).group(1)) <= 1
    [folder] = run_folders(tmp_path)
    assert (folder / "figures" / "lr_find.png").exists() and (folder / "lr_find.json").exists()
    assert bitwise_equal(spy["after"], spy["before"]) and list(tmp_path.rglob("*.ckpt")) == []
