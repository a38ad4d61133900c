"""TableFileDataModule: a user's CSV or .npz read, checked and split like the built-in data; bad files refused early."""

import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_probes import ROOT

from dlbasics.callbacks import DecisionBoundary, RegressionFit
from dlbasics.data import MoonsDataModule, TableFileDataModule
from dlbasics.lightning_cli import cli_main

EXAMPLE = ROOT / "examples" / "moons.csv"
CONFIGS = ROOT / "configs"
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
        "--trainer.enable_progress_bar", "false"]
AS_FILE = "--data=dlbasics.data.TableFileDataModule"  # a lesson config's data replaced by a file


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def points_csv(path: Path, n: int = 40, labels=(0, 1)) -> str:
    """n rows of x1,x2,label with the labels taking turns."""
    rows = [f"{i / n:.3f},{(i * 7 % n) / n:.3f},{labels[i % len(labels)]}" for i in range(n)]
    return write(path, "x1,x2,label\n" + "\n".join(rows) + "\n")


def run_folders(folder: Path) -> list[Path]:
    return list(folder.glob("**/lightning_logs"))


# The example file and the built-in moons.

def test_the_example_is_the_moons_configs_points_and_the_script_rewrites_it(tmp_path):
    write_moons = runpy.run_path(str(ROOT / "examples" / "make_moons_csv.py"))["write_moons"]
    assert write_moons(tmp_path / "moons.csv").read_bytes() == EXAMPLE.read_bytes()
    assert EXAMPLE.stat().st_size < 80_000


def test_the_example_splits_as_moons_does_same_rows_same_labels():
    """Same labels in the same order and the same seed: stratified_split picks the same rows."""
    table, moons = TableFileDataModule(str(EXAMPLE)), MoonsDataModule()
    assert (table.input_shape, table.num_outputs, table.classes, table.features) == ((2,), 2, [0, 1], ["x1", "x2"])
    for name in ("train", "val", "test"):
        (x, y), (mx, my) = table.split(name), moons.split(name)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(y, my)
        torch.testing.assert_close(x, mx, rtol=1e-5, atol=1e-6)  # 6 significant digits in the file
    assert [len(table.split(s)[0]) for s in ("train", "val", "test")] == [1500, 0, 500]


def test_batches_are_the_other_datamodules_batches():
    table, moons = TableFileDataModule(str(EXAMPLE), batch_size=64), MoonsDataModule(batch_size=64)
    ours, theirs = next(iter(table.train_dataloader())), next(iter(moons.train_dataloader()))
    assert len(table.train_dataloader()) == len(moons.train_dataloader()) == 24
    assert torch.equal(ours[1], theirs[1])


# Labels, features, regression, .npz.

@pytest.mark.parametrize(("labels", "classes"), [(("cat", "ant", "bee"), ["ant", "bee", "cat"]),
                                                 ((1, -1), [-1, 1]), ((10, 9), [9, 10]), ((2.0, 0.0), [0, 2])])
def test_labels_become_classes_0_to_c_minus_1_in_sorted_order(labels, classes, tmp_path):
    dm = TableFileDataModule(points_csv(tmp_path / "p.csv", 60, labels), label="label")
    assert dm.classes == classes and dm.num_outputs == len(classes)
    x, y = (torch.cat(parts) for parts in zip(*(dm.split(s) for s in ("train", "val", "test"))))
    assert y.dtype == torch.int64 and sorted(y.unique().tolist()) == list(range(len(classes)))
    # Every row's class index stands for its label in the file: row order is x1 = i / 60.
    rows = (x[:, 0] * 60).round().long()
    assert all(dm.classes[c] == labels[int(i) % len(labels)] for i, c in zip(rows, y.tolist()))


def test_features_pick_columns_in_the_order_given(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,c,target\n" + "".join(f"{i},{10 * i},{100 * i},{i % 2}\n"
                                                                for i in range(20)))
    dm = TableFileDataModule(path, label="target", features=["c", "a"], test_fraction=0.0)
    x, _ = dm.split("train")
    assert dm.input_shape == (2,) and torch.equal(x[:, 0], 100 * x[:, 1])


def test_regression_targets_are_float32_columns_and_the_split_is_seeded_and_random(tmp_path):
    path = write(tmp_path / "wave.csv", "x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(100)))
    dm = TableFileDataModule(path, label="y", task="regression", val_fraction=0.2, test_fraction=0.2, seed=3)
    (x, y), (vx, _), (tx, _) = (dm.split(s) for s in ("train", "val", "test"))
    assert (x.dtype, y.dtype, y.shape, dm.num_outputs, dm.classes) == (torch.float32, torch.float32, (60, 1), 1, None)
    assert torch.equal(y, 2 * x + 1)
    assert sorted(torch.cat([x, vx, tx]).flatten().tolist()) == list(range(100))
    assert tx.max() - tx.min() > 50  # not the file's last rows: random rows across the range
    again = TableFileDataModule(path, label="y", task="regression", val_fraction=0.2, test_fraction=0.2, seed=3)
    other = TableFileDataModule(path, label="y", task="regression", val_fraction=0.2, test_fraction=0.2, seed=4)
    assert torch.equal(again.split("test")[0], tx) and not torch.equal(other.split("test")[0], tx)


def test_npz_of_an_x_matrix_and_y_or_of_named_columns_reads_as_the_csv(tmp_path):
    x = np.loadtxt(EXAMPLE, delimiter=",", skiprows=1)
    np.savez(tmp_path / "matrix.npz", x=x[:, :2], y=x[:, 2].astype(int))
    np.savez(tmp_path / "columns.npz", x1=x[:, 0], x2=x[:, 1], y=x[:, 2].astype(int))
    csv = TableFileDataModule(str(EXAMPLE))
    for name, features, shape in (("matrix", ["x"], (2,)), ("columns", ["x1", "x2"], (2,))):
        dm = TableFileDataModule(str(tmp_path / f"{name}.npz"))
        assert (dm.features, dm.input_shape) == (features, shape)
        for split in ("train", "test"):
            assert all(torch.equal(a, b) for a, b in zip(dm.split(split), csv.split(split)))


# Bad input: one message each, before anything is built.

# id: (writes the file in a folder and returns its path, settings, what the message says)
BAD = {
    "missing_file": (lambda p: str(p / "nope.csv"), {}, r"data file '.*nope.csv' does not exist"),
    "unsupported_suffix": (lambda p: write(p / "d.xlsx", "x,y\n"), {},
                           r"has the suffix '.xlsx'; the files read are: .csv, .npz"),
    "missing_label": (lambda p: points_csv(p / "d.csv"), {"label": "y"},
                      r"label column 'y' is not in .*d.csv; its columns are: x1, x2, label"),
    "misspelt_feature": (lambda p: points_csv(p / "d.csv"), {"label": "label", "features": ["x1", "x22"]},
                         r"feature column 'x22' is not in .*; its columns are: x1, x2, label; did you mean 'x2'"),
    "non_numeric": (lambda p: write(p / "d.csv", "x1,x2,y\n1,2,0\n3,abc,1\n"), {},
                    r"d.csv line 3, column 'x2': 'abc' is not a number"),
    "empty_value": (lambda p: write(p / "d.csv", "x1,x2,y\n1,2,0\n3,,1\n"), {}, r"line 3, column 'x2': is empty"),
    "nan": (lambda p: write(p / "d.csv", "x1,x2,y\n1,2,0\n3,4,1\nNaN,1,0\n"), {},
            r"d.csv line 4, column 'x1': nan is not a finite number"),
    "inf": (lambda p: write(p / "d.csv", "x1,x2,y\n1,2,0\n3,inf,1\n"), {},
            r"line 3, column 'x2': inf is not a finite"),
    "nan_target": (lambda p: write(p / "d.csv", "x,y\n1,2\n3,nan\n"), {"task": "regression"},
                   r"line 3, column 'y': nan is not a finite number"),
    "one_class": (lambda p: points_csv(p / "d.csv", labels=("a",)), {"label": "label"},
                  r"label column 'label' of .* holds one class \('a'\) in all 40 rows; a classifier needs at least 2"),
    "fractional_labels": (lambda p: write(p / "d.csv", "x,y\n1,0.5\n2,1.5\n"), {},
                          (r"line 2, column 'y': class labels are integers or words, got 0.5; for a numeric target "
                           r"use task: regression")),
    "too_few_rows": (lambda p: points_csv(p / "d.csv", 6), {"label": "label", "val_fraction": 0.1},
                     (r"d.csv has too few rows \(rows per class: 0: 3, 1: 3\) for val_fraction 0.1 and test_fraction "
                      r"0.25: the val split of 6 samples would hold 1, fewer than the 2 classes")),
    "too_few_of_a_class": (lambda p: write(p / "d.csv", "x,y\n" + "".join(f"{i},{int(i == 0)}\n" for i in range(20))),
                           {}, r"too few rows \(rows per class: 0: 19, 1: 1\) .*least populated class"),
    "too_few_rows_regression": (lambda p: write(p / "d.csv", "x,y\n1,2\n3,4\n"), {"task": "regression"},
                                r"too few rows for val_fraction 0 and test_fraction 0.25: the test split of 2 samples"),
    "ragged_row": (lambda p: write(p / "d.csv", "x1,x2,y\n1,2,0\n3,1\n"), {},
                   r"line 3 has 2 values, but the header names 3 columns \(x1, x2, y\)"),
    "empty_file": (lambda p: write(p / "d.csv", ""), {}, r"d.csv is empty; the first line must name the columns"),
    "label_as_feature": (lambda p: points_csv(p / "d.csv"), {"label": "label", "features": ["x1", "label"]},
                         r"must name each column once and not the label 'label'"),
    "bad_npz": (lambda p: write(p / "d.npz", "not a zip"), {}, r"d.npz cannot be read as a NumPy .npz"),
    "unknown_task": (lambda p: points_csv(p / "d.csv"), {"task": "ranking"},
                     r"task 'ranking' is not one of: classification"),
}


def bad_file(case: str, folder: Path) -> tuple[str, dict, str]:
    make, settings, expected = BAD[case]
    return make(folder), settings, expected


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_or_setting_is_refused_with_one_message_naming_it(case, tmp_path):
    path, settings, expected = bad_file(case, tmp_path)
    error = FileNotFoundError if case == "missing_file" else ValueError
    with pytest.raises(error, match=expected):
        TableFileDataModule(path, **settings)


def test_the_inf_in_an_npz_is_named_by_row_and_entry(tmp_path):
    x = np.zeros((5, 3))
    x[2, 1] = np.inf
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5) % 2)
    with pytest.raises(ValueError, match=r"d.npz row 2, column 'x'\[1\]: inf is not a finite number"):
        TableFileDataModule(str(tmp_path / "d.npz"))


@pytest.mark.parametrize("case", ["missing_file", "misspelt_feature", "non_numeric", "nan", "one_class",
                                  "too_few_rows"])
def test_the_command_says_what_is_wrong_in_one_line_exits_2_and_leaves_no_run_folder(case, tmp_path, monkeypatch,
                                                                                     capsys):
    from dlbasics.cli import main

    path, settings, expected = bad_file(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLBASICS_DEBUG", raising=False)
    args = [f"--data.init_args.{key}={value}".replace("'", "") for key, value in settings.items()]
    assert main(["fit", "--config", str(CONFIGS / "csv_classifier.yaml"), *TINY,
                 "--data.init_args.path", path, *args]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dlbasics fit: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert re.search(expected, lines[0]), lines[0]
    assert run_folders(tmp_path) == []


def test_a_forgotten_task_regression_under_a_regressor_is_refused_before_the_first_step(tmp_path, monkeypatch, capsys):
    """Integer targets pass as 7 classes; the Regressor would fail in its loss on int64 targets."""
    from dlbasics.cli import main

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "wave.csv", "x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(40)))
    assert main(["fit", "--config", str(CONFIGS / "sine_overfit.yaml"), *TINY, AS_FILE, "--data.path", "wave.csv"]) == 2
    assert ("Regressor needs task 'regression', but wave.csv is read for classification; set --data.task regression"
            in capsys.readouterr().err)
    assert run_folders(tmp_path) == []


def test_a_classifier_on_a_file_read_for_regression_says_what_to_change(tmp_path, monkeypatch, capsys):
    from dlbasics.cli import main

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "wave.csv", "x,y\n" + "".join(f"{i},{i / 7}\n" for i in range(40)))
    assert main(["fit", "--config", str(CONFIGS / "csv_classifier.yaml"), *TINY, "--data.init_args.path", "wave.csv",
                 "--data.init_args.task", "regression"]) == 2
    assert "Classifier needs at least 2 classes, but the data has num_outputs=1" in capsys.readouterr().err
    assert run_folders(tmp_path) == []


# The configs on a file.

def test_csv_classifier_fits_a_users_file_with_its_label(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = points_csv(tmp_path / "my.csv", 80, ("no", "yes", "maybe"))
    fit = cli_main(["fit", "--config", str(CONFIGS / "csv_classifier.yaml"), *TINY,
                    "--data.init_args.path", "my.csv", "--data.init_args.label", "label"])
    assert (fit.model.hparams.input_shape, fit.model.hparams.num_outputs) == ((2,), 3)
    assert fit.datamodule.path == "my.csv" and Path(path).is_file()
    assert fit.trainer.global_step == 1 and Path(fit.trainer.checkpoint_callback.last_model_path).is_file()


def test_the_2d_lesson_config_runs_on_a_file_with_its_decision_boundary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    points_csv(tmp_path / "my.csv", 100)
    fit = cli_main(["fit", "--config", str(CONFIGS / "toy2d_dropout.yaml"), *TINY, AS_FILE, "--data.path", "my.csv",
                    "--data.label", "label", "--trainer.callbacks+=dlbasics.callbacks.DecisionBoundary",
                    "--trainer.callbacks.every_n_epochs=1"])
    data, boundary = fit.datamodule, next(c for c in fit.trainer.callbacks if isinstance(c, DecisionBoundary))
    # The config's split and batch settings carry over to the file: 30% validation, full batch.
    assert (data.val_fraction, data.test_fraction, data.batch_size) == (0.3, 0.0, "full")
    assert boundary.history[-1]["n_points"] == 30 and list(Path(fit.trainer.log_dir).glob("figures/decision_*.png"))


def test_the_1d_lesson_config_runs_on_a_file_with_its_regression_fit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "wave.csv", "x,y\n" + "".join(f"{i / 10:.1f},{np.sin(i / 10):.6g}\n" for i in range(-30, 31)))
    fit = cli_main(["fit", "--config", str(CONFIGS / "sine_overfit.yaml"), *TINY, AS_FILE, "--data.path", "wave.csv",
                    "--data.label", "y", "--data.task", "regression",
                    "--trainer.callbacks+=dlbasics.callbacks.RegressionFit", "--trainer.callbacks.every_n_epochs=1"])
    fitted = next(c for c in fit.trainer.callbacks if isinstance(c, RegressionFit))
    assert fit.model.hparams.num_outputs == 1 and fit.datamodule.batch_size == "full"
    assert len(fitted.last["train_x"]) == 46 and fitted.last["true_y"] is None  # 61 rows, 25% test
    assert list(Path(fit.trainer.log_dir).glob("figures/regression_fit_*.png"))


# The acceptance check: the CSV export reaches the built-in moons' test accuracy.

@pytest.mark.slow
def test_moons_mlp_on_the_csv_export_matches_the_built_in_moons(tmp_path, monkeypatch):
    """The whole moons_mlp run (40 epochs) on each. Validation each epoch is left out: it draws no random numbers and
    changes no weights, so the runs train as the config's do, in half the time with FastLogging."""
    monkeypatch.chdir(tmp_path)
    accuracy = {}
    for name, extra in (("builtin", []), ("csv", [AS_FILE, f"--data.path={EXAMPLE}", "--data.label=y"])):
        fit = cli_main(["fit", "--config", str(CONFIGS / "moons_mlp.yaml"), "--trainer.enable_progress_bar=false",
                        "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                        "--trainer.callbacks=[dlbasics.callbacks.FastLogging]", "--trainer.limit_val_batches=0",
                        *extra], save_config_callback=None)
        assert fit.trainer.current_epoch == 40
        accuracy[name] = fit.trainer.test(fit.model, datamodule=fit.datamodule, verbose=False)[0]["test/acc"]
    assert accuracy["builtin"] > 0.9  # the config's ~94%
    assert abs(accuracy["csv"] - accuracy["builtin"]) <= 0.01, accuracy
