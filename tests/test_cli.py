import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from reliability_probes import child_environment
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlbasics.lightning_cli import cli_main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
        "--trainer.limit_test_batches", "2", "--trainer.enable_progress_bar", "false"]


def run(subcommand: str, config: Path, tmp_path: Path, *extra: str):
    args = [subcommand, "--config", str(config), *TINY,
            "--trainer.logger.init_args.save_dir", str(tmp_path / "lightning_logs"), *extra]
    return cli_main(args)


def data_args(config: Path, fake_mnist: Path) -> list[str]:
    if "mnist" in config.name:
        return ["--data.init_args.data_dir", str(fake_mnist), "--data.init_args.val_size", "100"]
    if config.stem == "activation_swap":  # the swap at epoch 35 must fit in the run
        return ["--trainer.max_epochs", "36"]
    return []


def scalar_tags(log_dir: str) -> set[str]:
    events = EventAccumulator(log_dir)
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_config_fits_and_tests(config, tmp_path, monkeypatch, fake_mnist):
    monkeypatch.chdir(tmp_path)
    extra = data_args(config, fake_mnist)
    fit = run("fit", config, tmp_path, *extra)
    log_dir = Path(fit.trainer.log_dir)
    assert log_dir.parent.name == config.stem and (log_dir / "config.yaml").exists()
    # What the data knows was linked into the model, not typed twice.
    assert tuple(fit.model.hparams.input_shape) == fit.datamodule.input_shape
    assert fit.model.hparams.num_outputs == fit.datamodule.num_outputs
    assert "train/loss" in scalar_tags(str(log_dir))
    checkpoint = fit.trainer.checkpoint_callback.last_model_path
    assert torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint) == []
    if fit.datamodule.split("test")[0].numel():
        test = run("test", config, tmp_path, *extra, "--ckpt_path", checkpoint)
        assert "test/loss" in test.trainer.callback_metrics


def test_print_config_shows_the_resolved_settings(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(ROOT / "configs/moons_mlp.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "dlbasics.models.Classifier" in out and "torch.optim.Adam" in out and "noise: 0.25" in out


def test_unknown_config_key_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(ROOT / "configs/moons_mlp.yaml"), "--model.init_args.hiden_sizes", "[4]"])
    assert exit_info.value.code != 0
    assert "hiden_sizes" in capsys.readouterr().err


def test_bad_activation_from_the_command_line_names_the_valid_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((SystemExit, ValueError)) as info:
        run("fit", ROOT / "configs/moons_mlp.yaml", tmp_path, "--model.network.activation", "rleu")
    message = str(info.value) + capsys.readouterr().err
    assert "'rleu' is not one of: sigmoid, tanh, relu" in message


def test_help_lists_every_subcommand_and_the_version(capsys):
    from dlbasics import __version__
    from dlbasics.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for subcommand in ("fit", "validate", "test", "predict", "lesson"):
        assert f"\n  {subcommand} " in out
    assert main(["--version"]) == 0 and capsys.readouterr().out == f"dlbasics {__version__}\n"


@pytest.mark.parametrize("argv,message", [([], "name a subcommand"), (["fitt"], "'fitt' is not a subcommand")])
def test_a_missing_or_unknown_subcommand_exits_2(argv, message, capsys):
    from dlbasics.cli import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["--version"], [], ["lesson", "--list"]])
def test_answers_that_need_no_training_import_neither_lightning_nor_torch(argv):
    code = ("import sys; from dlbasics.cli import main; main(sys.argv[1:]); "
            "loaded = [m for m in ('lightning', 'torch', 'matplotlib') if m in sys.modules]; "
            "sys.exit(f'imported {loaded}' if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


class RefusesTheRun(Callback):
    def check_before_run(self, trainer, pl_module):
        raise ValueError(f"refused by a callback, before epoch {trainer.current_epoch}")


def test_callbacks_check_the_run_before_its_folder_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="refused by a callback"):
        run("fit", ROOT / "configs/moons_mlp.yaml", tmp_path, "--trainer.callbacks+=test_cli.RefusesTheRun")
    assert not (tmp_path / "lightning_logs").exists()


def test_module_entry_point_and_console_script():
    for command in ([sys.executable, "-m", "dlbasics", "--help"], [str(Path(sys.executable).parent / "dlbasics"),
                                                                   "fit", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "fit" in result.stdout


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    command = [str(Path(sys.executable).parent / "dlbasics"), "fit", "--config", str(ROOT / "configs/moons_mlp.yaml"),
               "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
               "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env=child_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / "lightning_logs/moons_mlp/version_0/checkpoints/last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)
    # 1500 training points, batch 64, two ranks: 750 each -> 12 steps per epoch.
    assert saved["global_step"] == 24


def test_main_releases_the_ddp_process_group_before_exit(tmp_path, monkeypatch):
    # A gloo group left to interpreter teardown can abort a finished run with status -6 (seen in CI).
    monkeypatch.chdir(tmp_path)
    from dlbasics.cli import main

    try:
        assert main(["fit", "--config", str(ROOT / "configs/moons_mlp.yaml"), *TINY, "--trainer.accelerator", "cpu",
                     "--trainer.devices", "1", "--trainer.strategy", "ddp"]) == 0
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


EXIT_CHECK = """
import atexit, os, sys, torch, torch.distributed as dist
atexit.register(lambda: print("held at exit:", dist.is_initialized(), flush=True))  # runs after dlbasics' own
import dlbasics
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
dist.init_process_group("gloo", rank=0, world_size=1)
"""


def test_importing_dlbasics_releases_a_process_group_left_at_exit(tmp_path):
    # ddp_spawn's workers run no dlbasics command: they only unpickle dlbasics objects, so the import must do it.
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    done = subprocess.run([sys.executable, "-c", EXIT_CHECK, str(find_free_network_port())], capture_output=True,
                          text=True, timeout=120, env=child_environment(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "held at exit: False" in done.stdout


def test_predict_writes_the_predictions_with_their_inputs(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="lightning.pytorch")  # a lesson test may have quietened it
    monkeypatch.chdir(tmp_path)
    fit = run("fit", ROOT / "configs/moons_mlp.yaml", tmp_path)
    predicted = run("predict", ROOT / "configs/moons_mlp.yaml", tmp_path, "--trainer.limit_predict_batches", "100",
                    "--ckpt_path", fit.trainer.checkpoint_callback.last_model_path)
    path = Path(predicted.trainer.log_dir) / "predictions.pt"
    saved = torch.load(path, weights_only=True)
    x, y = predicted.datamodule.split("test")
    assert torch.equal(saved["inputs"], x) and torch.equal(saved["targets"], y)
    with torch.no_grad():
        torch.testing.assert_close(saved["outputs"], predicted.model.eval()(x).softmax(-1))
    assert f"Predictions: {path}" in caplog.text


def test_a_fit_prints_what_a_user_acts_on_and_not_lightnings_banners(tmp_path):
    command = [str(Path(sys.executable).parent / "dlbasics"), "fit", "--config", str(ROOT / "configs/moons_mlp.yaml"),
               *TINY]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    for noise in ("GPU available", "TPU available", "Tip:", "| Name", "dirpath has changed"):
        assert noise not in out
    # The hint repeats the command's overrides (a user's --data.init_args.path must reach the test too).
    assert "Test it with: dlbasics test --config " + str(ROOT / "configs/moons_mlp.yaml") + " " + " ".join(TINY) in out


def test_the_test_hint_keeps_every_override_but_the_subcommand_config_and_checkpoint():
    from dlbasics.lightning_cli import command_overrides

    args = ["fit", "--config", "c.yaml", "--data.init_args.path", "my file.csv", "--ckpt_path=last",
            "--config=d.yaml", "--trainer.max_epochs=3", "--ckpt_path", "x.ckpt"]
    assert command_overrides(args) == ["--data.init_args.path", "my file.csv", "--trainer.max_epochs=3"]


def test_fit_help_says_how_to_list_the_model_and_data_settings(capsys):
    from dlbasics.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--model.help CLASS and --data.help CLASS" in out and "--config configs/NAME.yaml" in out
