"""L12 early stopping: lesson runs keep checkpoints only when their config or lesson asks, the best checkpoint is the
best epoch, the recorded stop is EarlyStopping's, and the lesson's run is `dlbasics fit` of its config."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint

from dlbasics.lessons import early_stopping as lesson
from dlbasics.lessons import ensemble
from dlbasics.lessons.ensemble import can_ensemble
from dlbasics.lessons.runner import Run, run_config, run_lesson_run, run_seeds
from dlbasics.lightning_cli import cli_main

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 60  # seed 0 stops after epoch 33 (its best is epoch 13): well inside 60 epochs
SHORT_STOPPED = Run("es", lesson.STOPPED.config, (f"--trainer.max_epochs={EPOCHS}",), test=True)


def checkpoints(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ckpt"))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """The lesson's early-stopped run at seed 0, with a 60-epoch budget."""
    folder = tmp_path_factory.mktemp("lesson")
    return run_lesson_run(SHORT_STOPPED, folder, seed=0, version="es/seed_0"), folder


def test_existing_lesson_runs_write_no_checkpoint(tmp_path):
    run = Run("plain", "sine_overfit.yaml", ("--trainer.max_epochs=3",), test=True)
    solo = run_seeds(run, tmp_path, [0])  # one seed: a solo run
    together = run_seeds(run, tmp_path, [1, 2])  # two: a seed ensemble
    for result in (solo.first, *together.results):
        assert not any(isinstance(c, Checkpoint) for c in result.callbacks)
    assert checkpoints(tmp_path) == []
    with pytest.raises(ValueError, match="run 'plain' kept no best-epoch checkpoint: give its config a "
                                         "ModelCheckpoint with monitor: val/loss"):
        _ = solo.first.best_checkpoint


def test_a_lessons_own_checkpoint_is_kept_and_writes_into_the_runs_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    run = Run("own", "sine_overfit.yaml", ("--trainer.max_epochs=3",))
    callback = ModelCheckpoint(dirpath=str(elsewhere), monitor="val/loss", filename="best-{epoch}")
    runs = run_seeds(run, tmp_path / "lesson", [0, 1], [callback])
    assert [r.log_dir.name for r in runs.results] == ["seed_0", "seed_1"]  # not a seed ensemble
    assert not elsewhere.exists()
    for result in runs.results:
        best = result.best_checkpoint
        assert best.parent == result.log_dir / "checkpoints" and best.is_file()
        assert best.name == f"best-epoch={int(np.argmin(result.curves['val/loss']))}.ckpt"


def test_the_runs_folder_holds_the_best_epoch_only(stopped):
    result, folder = stopped
    (best,) = checkpoints(folder)  # no last.ckpt: the config's save_last checkpoint is dropped
    assert result.best_checkpoint == folder / best
    assert best == f"es/seed_0/checkpoints/best-epoch={lesson.best_epoch(result)}.ckpt"


def test_the_recorded_stop_is_early_stoppings(stopped):
    result, _ = stopped
    stopper = result.callback(EarlyStopping)
    assert stopper.stopped_epoch > 0, "EarlyStopping did not stop the run: the test needs one that stops"
    assert result.epochs == stopper.stopped_epoch + 1 < EPOCHS
    assert all(len(curve) == result.epochs for curve in result.curves.values())
    # It stops once val/loss has not improved for `patience` epochs after the best one.
    assert stopper.stopped_epoch == lesson.best_epoch(result) + lesson.PATIENCE
    assert stopper.patience == lesson.PATIENCE and stopper.monitor == lesson.MONITOR


def test_the_best_checkpoint_reloads_to_the_logged_best_val_loss(stopped):
    result, _ = stopped
    val = result.curves["val/loss"]
    saved = torch.load(result.best_checkpoint, weights_only=True)
    assert saved["epoch"] == lesson.best_epoch(result) < result.epochs - 1
    assert float(result.callback(ModelCheckpoint).best_model_score) == pytest.approx(min(val), rel=1e-6)
    best = lesson.best_epoch_model(result)
    assert best.evaluate("val")["loss"] == pytest.approx(min(val), rel=1e-5)
    assert result.evaluate("val")["loss"] == pytest.approx(val[-1], rel=1e-5)  # the model as it stopped
    # trainer.test tested the model as it stopped, not the best checkpoint
    assert result.last("test/loss") == pytest.approx(result.evaluate("test")["loss"], rel=1e-5)
    assert lesson.tested_mse({"early_stopped": result}, "best") == pytest.approx(best.evaluate("test")["loss"])


def test_validation_is_not_the_test_split(stopped):
    result, _ = stopped
    (val_x, val_y), (test_x, test_y) = result.data.split("val"), result.data.split("test")
    assert len(val_y) == len(test_y) == 100
    assert torch.equal(val_x, test_x) and not torch.allclose(val_y, test_y)  # same x, independent noise


def test_dlbasics_fit_of_the_config_stops_where_the_lesson_run_does(stopped, tmp_path, monkeypatch):
    result, _ = stopped
    monkeypatch.chdir(tmp_path)
    fit = cli_main(["fit", *SHORT_STOPPED.args(seed=0), "--trainer.enable_progress_bar=false"])
    stopper = next(c for c in fit.trainer.callbacks if isinstance(c, EarlyStopping))
    assert stopper.stopped_epoch == result.callback(EarlyStopping).stopped_epoch
    best = next(c for c in fit.trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor)
    assert float(best.best_model_score) == float(result.callback(ModelCheckpoint).best_model_score)
    assert Path(best.best_model_path).name == result.best_checkpoint.name
    assert Path(fit.trainer.checkpoint_callback.last_model_path).name == "last.ckpt"  # fit keeps its resume point


def test_the_config_is_the_full_budget_run_plus_the_lessons_callbacks():
    configs = [yaml.safe_load(run_config(run, seed=3)) for run in (lesson.STOPPED, lesson.FULL)]
    stopped, full = ([(c["class_path"].rsplit(".", 1)[1], c.get("init_args") or {}) for c in
                      config["trainer"].pop("callbacks")] for config in configs)
    for config in configs:
        del config["trainer"]["logger"]
    assert configs[0] == configs[1]  # data, model, optimizer, budget: all the same
    assert [name for name, _ in stopped if name not in dict(full)] == ["EarlyStopping"]
    (stopping,) = [args for name, args in stopped if name == "EarlyStopping"]
    assert (stopping["monitor"], stopping["patience"], stopping["min_delta"], stopping["mode"]) == (
        lesson.MONITOR, lesson.PATIENCE, lesson.MIN_DELTA, "min")
    (best,) = [args for name, args in stopped if name == "ModelCheckpoint" and args["monitor"] is not None]
    assert (best["monitor"], best["mode"], best["save_top_k"]) == (lesson.MONITOR, "min", 1)


def with_callback(tmp_path: Path, callback: dict) -> Path:
    config = yaml.safe_load((ROOT / "configs/sine_overfit.yaml").read_text())
    config["trainer"]["callbacks"].append(callback)
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.mark.parametrize(("callbacks", "config_callback", "expected"), [
    ([], None, True),  # the config's save_last checkpoint: dropped by lesson runs, ensembles as before
    ([EarlyStopping(monitor="val/loss")], None, False),
    ([ModelCheckpoint(monitor="val/loss")], None, False),
    ([ModelCheckpoint()], None, False),  # a lesson's own checkpoint is kept, even one that monitors nothing
    ([], {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": "val/loss"}}, False),
    ([], {"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": {"monitor": "val/loss"}}, False),
])
def test_runs_that_stop_early_or_keep_checkpoints_are_never_seed_ensembles(callbacks, config_callback, expected,
                                                                            tmp_path, monkeypatch):
    if config_callback is not None:
        monkeypatch.setattr(ensemble, "CONFIGS", with_callback(tmp_path, config_callback))
    run = Run("r", "extra.yaml" if config_callback else "sine_overfit.yaml")
    assert can_ensemble(run, callbacks) is expected


def test_the_lessons_early_stopped_run_is_not_a_seed_ensemble():
    assert not can_ensemble(lesson.STOPPED) and can_ensemble(lesson.FULL)
