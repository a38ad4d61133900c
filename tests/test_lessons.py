"""`dlbasics lesson`: every lesson runs and writes its figures and summary; each shows its phenomenon."""

import json
from pathlib import Path

import pytest

from dlbasics.lessons import LESSONS
from dlbasics.lessons.cli import lesson_main
from dlbasics.lessons.runner import run_config

ROOT = Path(__file__).resolve().parents[1]


def run_lesson(tmp_path: Path, name: str, *extra: str) -> dict:
    assert lesson_main([name, "--out", str(tmp_path / "out"), *extra]) == 0
    (folder,) = (tmp_path / "out" / f"lesson_{name}").glob("version_*")
    summary = json.loads((folder / "summary.json").read_text())
    assert (folder / "summary.md").read_text().startswith(f"# {LESSONS[name].code}")
    for figure in summary["figures"]:
        assert (folder / "figures" / figure).stat().st_size > 5000, figure  # a real picture, not an empty canvas
    return summary


def test_list_names_every_lesson(capsys):
    assert lesson_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name, lesson in LESSONS.items():
        assert name in out and lesson.code in out


@pytest.mark.parametrize("argv", [["nope"], [], ["dropout", "--x", "1"], ["dropout", "--seed", "one"]])
def test_bad_lesson_requests_exit_2_and_write_nothing(argv, tmp_path, capsys):
    assert lesson_main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "dlbasics lesson:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_backprop_by_hand_with_the_users_numbers(capsys):
    argv = ["backprop", "--x", "2", "1", "--w1", "0.2", "-0.3", "0.5", "0.4", "--w2", "0.6", "-0.7", "--y", "0"]
    assert lesson_main(argv) == 0
    assert "agree within 1e-06: yes" in capsys.readouterr().out
    assert lesson_main(["backprop", "--x", "2", "1"]) == 2


def test_help_shows_the_arguments_a_lesson_declares(capsys):
    assert lesson_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "backprop lesson (L2)" in out and "--w1" in out and "--print-configs" in out


def every_run():
    return [(name, run) for name, lesson in LESSONS.items() for run in lesson.load().RUNS]


@pytest.mark.parametrize("name,run", every_run(), ids=lambda v: getattr(v, "name", v))
def test_every_lesson_run_is_a_valid_config_plus_overrides(name, run):
    """Each run parses through the `dlbasics fit` parser: a bad override or config key fails here, not mid-lesson."""
    config = run_config(run, seed=3)
    assert "seed_everything: 3" in config
    assert (ROOT / "configs" / run.config).is_file()


def test_print_configs_shows_each_runs_command_and_full_config(capsys):
    assert lesson_main(["dropout", "--print-configs", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    command = ("dlbasics fit --config configs/toy2d_dropout.yaml --model.network.dropout=0.3 --seed_everything=2 "
               "--data.seed=2")
    assert f"# {command}\n" in out
    section = out.split(command)[1].split("# L4")[0]
    assert "dropout: 0.3" in section and "class_path: dlbasics.models.components.MLP" in section
    assert out.count("seed_everything: 2") == len(LESSONS["dropout"].load().RUNS)


# A full-batch run, a run whose dropout draws random numbers, a run with a test split, and a callback from the config.
SAME_AS_FIT = [("activations", "relu"), ("dropout", "dropout_0.3"), ("overfitting", "noise1.0_wd0.1"),
               ("activations", "swap_tanh_to_relu")]


@pytest.mark.parametrize("lesson,name", SAME_AS_FIT)
def test_a_lesson_run_is_exactly_dlbasics_fit_of_its_config(lesson, name, tmp_path, monkeypatch):
    from dlbasics.lessons.context import LessonContext
    from dlbasics.lightning_cli import cli_main

    (run,) = [r for r in LESSONS[lesson].load().RUNS if r.name == name]
    result = LessonContext(lesson, tmp_path / "lessons", seed=1).run(run)
    monkeypatch.chdir(tmp_path)
    fit = cli_main(["fit", *run.args(seed=1), "--trainer.enable_progress_bar=false"])
    metrics = {k: float(v) for k, v in fit.trainer.callback_metrics.items()}
    if run.test:
        tested = cli_main(["test", *run.args(seed=1), "--trainer.enable_progress_bar=false",
                           "--ckpt_path", fit.trainer.checkpoint_callback.last_model_path])
        metrics.update({k: float(v) for k, v in tested.trainer.callback_metrics.items()})
    assert len(result.curves["train/loss"]) == fit.trainer.max_epochs
    for key in ("train/loss", "train/acc", "val/loss", "test/loss", "test/r2"):
        if key in metrics:
            assert result.last(key) == metrics[key], key


@pytest.mark.parametrize("name", [n for n in LESSONS if n not in ("mnist", "basics")])
def test_every_small_lesson_runs_fast(name, tmp_path):
    summary = run_lesson(tmp_path, name, "--fast")
    assert summary["fast"] and summary["key"] and summary["figures"]


@pytest.mark.parametrize("name", ["mnist", "basics"])
def test_mnist_lessons_run_fast_on_small_data(name, tmp_path, fake_mnist):
    summary = run_lesson(tmp_path, name, "--fast", "--data-dir", str(fake_mnist))
    assert len(summary["figures"]) >= 3


def test_backprop_phenomena(tmp_path):
    summary = run_lesson(tmp_path, "backprop")
    key = summary["key"]
    assert key["L2.a max |hand - autograd|, worked"] < 1e-6 and key["L2.a max |hand - autograd|, exercise"] < 1e-6
    assert key["L2.c first-layer |grad| sigmoid / relu"] < 0.1
    assert key["L2.c first/last hidden |grad|, sigmoid"] < 0.1


def test_activation_phenomena(tmp_path):
    tables = run_lesson(tmp_path, "activations")["tables"]
    per_act = tables["L1.b-c per activation"]
    # Saturating sigmoid passes back the smallest gradients while the network is still learning.
    for other in ("tanh", "relu", "leaky_relu"):
        assert per_act["sigmoid"]["first_layer_grad_epoch0"] < 0.5 * per_act[other]["first_layer_grad_epoch0"]
    swap = tables["L1.d activation swap"]["tanh -> relu"]
    assert swap["loss_at_swap"] > 1.5 * swap["loss_before_swap"]


def test_overfitting_phenomena(tmp_path):
    tables = run_lesson(tmp_path, "overfitting")["tables"]
    runs = tables["L3.a-c train vs test"]
    assert runs["train20_noise0.2"]["train_loss"] < runs["train20_noise0.2"]["test_loss"]
    # Weight decay on the noisy set: better on unseen points, worse on the training points it would chase.
    assert runs["noise1.0_wd0.1"]["test_loss"] < runs["noise1.0_wd0.0"]["test_loss"]
    assert runs["noise1.0_wd0.1"]["train_loss"] > runs["noise1.0_wd0.0"]["train_loss"]
    widths = tables["L3.d hidden width"]
    assert widths["width 2"]["test_r2"] < widths["width 32"]["test_r2"]  # too small a model underfits


def test_dropout_phenomena(tmp_path):
    tables = run_lesson(tmp_path, "dropout")["tables"]
    sweep = tables["L4.d dropout rate sweep"]
    assert sweep["p=0.7"]["val_acc_last10"] < sweep["p=0.3"]["val_acc_last10"]


@pytest.mark.slow
def test_regularization_phenomena(tmp_path):
    runs = run_lesson(tmp_path, "regularization")["tables"]["L5 variants"]
    assert runs["weight_decay_1.0"]["test_mse"] > runs["weight_decay_0.01"]["test_mse"]  # too strong: underfits


@pytest.mark.slow
def test_mnist_lesson_reaches_097_with_the_lesson_defaults(tmp_path):
    summary = run_lesson(tmp_path, "mnist", "--data-dir", str(ROOT / "data"))  # real MNIST, full 5 epochs
    assert summary["key"]["test accuracy (expected about 0.97-0.98)"] >= 0.97


@pytest.mark.slow
def test_mnist_cnn_after_one_epoch(tmp_path, monkeypatch):
    """A reduced budget (1 of the lesson's 5 epochs, ~1 min); the full budget reaches 0.990 in `make run`."""
    from dlbasics.lightning_cli import cli_main

    monkeypatch.chdir(tmp_path)
    common = ["--config", str(ROOT / "configs/mnist_cnn.yaml"), "--data.data_dir", str(ROOT / "data"),
              "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path)]
    fit = cli_main(["fit", *common, "--trainer.max_epochs", "1"])
    test = cli_main(["test", *common, "--ckpt_path", fit.trainer.checkpoint_callback.last_model_path])
    assert test.trainer.callback_metrics["test/acc"] >= 0.975
