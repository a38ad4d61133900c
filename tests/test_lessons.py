"""`dlbasics lesson`: every lesson runs and writes its figures and summary; each shows its phenomenon."""

import json
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.parametrize("argv", [["nope"], [], ["dropout", "--x", "1"], ["dropout", "--seed", "one"],
                                  ["dropout", "--seeds", "0"], ["dropout", "--seeds", "two"]])
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


@pytest.mark.parametrize("name", list(LESSONS))
def test_runs_that_share_a_lessons_charts_share_what_a_step_is(name):
    """TensorBoard draws a tag of every run of a lesson in one chart: full-batch runs (a step is an epoch) and
    minibatch runs of one lesson must log under different tag groups (``Run.tag_prefix``), as L4's moons runs do."""
    kinds: dict[str, set[bool]] = {}
    for run in LESSONS[name].load().RUNS:  # the config's batch size, or the run's override of it
        size = yaml.safe_load((ROOT / "configs" / run.config).read_text())["data"]["init_args"]["batch_size"]
        for override in (o for o in run.overrides if "batch_size" in o):
            assert override.startswith("--data.batch_size="), override  # the one form read here
            size = override.partition("=")[2]
        kinds.setdefault(run.tag_prefix, set()).add(size == "full")
    assert all(len(full) == 1 for full in kinds.values()), kinds


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
    # Two seeds train side by side in one fit (a seed ensemble); the second must be exactly `dlbasics fit` at seed 2.
    result = LessonContext(lesson, tmp_path / "lessons", seed=1, seeds=2).run(run).results[1]
    monkeypatch.chdir(tmp_path)
    fit = cli_main(["fit", *run.args(seed=2), "--trainer.enable_progress_bar=false"])
    metrics = {k: float(v) for k, v in fit.trainer.callback_metrics.items()}
    if run.test:
        tested = cli_main(["test", *run.args(seed=2), "--trainer.enable_progress_bar=false",
                           "--ckpt_path", fit.trainer.checkpoint_callback.last_model_path])
        metrics.update({k: float(v) for k, v in tested.trainer.callback_metrics.items()})
    assert len(result.curves["train/loss"]) == fit.trainer.max_epochs
    for key in ("train/loss", "train/acc", "val/loss", "test/loss", "test/r2"):
        if key in metrics:
            assert result.last(key) == metrics[key], key


SMALL = [n for n in LESSONS if n not in ("mnist", "basics")]


@pytest.mark.parametrize("name", SMALL)
def test_every_small_lesson_runs_fast_with_k_of_n_and_an_interval_per_claim(name, tmp_path):
    summary = run_lesson(tmp_path, name, "--fast", "--seeds", "2")
    assert summary["fast"] and summary["key"] and summary["figures"]
    assert len(summary["claims"]) == len(LESSONS[name].load().CLAIMS)
    for claim in summary["claims"]:
        assert claim["n"] == 2 and 0 <= claim["k"] <= 2 and claim["seeds"] == [0, 1]
        assert claim["low"] <= claim["mean"] <= claim["high"] and len(claim["values"]) == 2
        assert claim["interval"] == "95% Student-t interval of the mean over seeds"


@pytest.mark.parametrize("name", ["mnist", "basics"])
def test_mnist_lessons_run_fast_on_small_data(name, tmp_path, fake_mnist):
    summary = run_lesson(tmp_path, name, "--fast", "--data-dir", str(fake_mnist))
    assert len(summary["figures"]) >= 3
    mnist_claims = [c for c in summary["claims"] if "MNIST" in c["text"] or "shallow net" in c["text"]]
    assert mnist_claims and all(c["n"] == 1 and c["low"] is None for c in mnist_claims)  # MNIST: one seed


def check_claims(summary: dict, name: str) -> None:
    """Each claim the lesson declares was measured at its default seeds, and its verdict follows from the
    declaration (recomputed here from the per-seed values); every "shows it" claim holds, and every exercise
    with claims has one that holds (a published setting may fail where a variant shows the phenomenon)."""
    declared = LESSONS[name].load().CLAIMS
    measured = summary["claims"]
    assert [(c["code"], c["text"], c["setting"]) for c in measured] == [(c.code, c.text, c.setting) for c in declared]
    shown: dict[str, bool] = {}
    for claim, got in zip(declared, measured):
        k = sum(claim.holds_at(v) for v in got["values"])
        assert got["k"] == k and got["holds"] == (k >= 0.8 * got["n"]), claim.text
        if claim.shows_it:
            assert got["holds"], f"{claim.code} {claim.text}: holds in only {k} of {got['n']} seeds"
        shown[claim.code] = shown.get(claim.code, False) or got["holds"]
    assert all(shown.values()), {code: ok for code, ok in shown.items() if not ok}


@pytest.mark.slow
@pytest.mark.claims
@pytest.mark.parametrize("name", SMALL)
def test_every_claim_holds_at_the_default_seeds(name, tmp_path):
    summary = run_lesson(tmp_path, name)
    assert all(claim["n"] == 5 for claim in summary["claims"])
    check_claims(summary, name)


@pytest.mark.slow
@pytest.mark.claims
def test_mnist_claim_holds_with_the_lesson_defaults(tmp_path):
    summary = run_lesson(tmp_path, "mnist", "--data-dir", str(ROOT / "data"))  # real MNIST, full 5 epochs, 1 seed
    check_claims(summary, "mnist")


@pytest.mark.slow
@pytest.mark.claims
def test_mnist_cnn_after_one_epoch(tmp_path, monkeypatch):
    """A reduced budget (1 of the lesson's 5 epochs, ~1 min); the full budget reaches 0.990 in `make run`."""
    from dlbasics.lightning_cli import cli_main

    monkeypatch.chdir(tmp_path)
    common = ["--config", str(ROOT / "configs/mnist_cnn.yaml"), "--data.data_dir", str(ROOT / "data"),
              "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path)]
    fit = cli_main(["fit", *common, "--trainer.max_epochs", "1"])
    test = cli_main(["test", *common, "--ckpt_path", fit.trainer.checkpoint_callback.last_model_path])
    assert test.trainer.callback_metrics["test/acc"] >= 0.975


@pytest.mark.slow
@pytest.mark.claims
def test_the_moons_claim_holds_at_five_seeds(tmp_path):
    """L7's moons claim at the lesson's default seeds (its CNN claim: test_mnist_cnn_after_one_epoch, one epoch)."""
    from dlbasics.lessons.claims import evaluate
    from dlbasics.lessons.context import LessonContext

    basics = LESSONS["basics"].load()
    ctx = LessonContext("basics", tmp_path, seeds=5)
    ctx.run(basics.MOONS)
    (moons,) = [c for c in basics.CLAIMS if c.runs == (basics.MOONS.name,)]
    (result,) = evaluate([moons], ctx.by_seed)
    assert result.n == 5 and result.holds, result.line()
