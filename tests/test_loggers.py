from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlbasics.callbacks import DecisionBoundary
from dlbasics.data import MoonsDataModule, SineDataModule
from dlbasics.loggers import BufferedTensorBoardLogger, label_validation_split
from dlbasics.models import Classifier, Regressor
from dlbasics.models.components import MLP


def fit(tmp_path: Path, logger: TensorBoardLogger, make_trainer, data: SineDataModule | None = None) -> None:
    model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8]))
    data = data or SineDataModule(n_train=20, n_eval=10, eval_noise_std=0.1, batch_size="full")
    make_trainer(max_epochs=30, logger=logger, log_every_n_steps=1).fit(model, datamodule=data)


def test_buffered_logger_flushes_on_a_timer_but_loses_no_value(tmp_path, make_trainer, monkeypatch):
    flushes = []
    monkeypatch.setattr(TensorBoardLogger, "save", lambda self: flushes.append(1))
    logger = BufferedTensorBoardLogger(str(tmp_path), name="run", version=0, flush_every_s=3600)
    fit(tmp_path, logger, make_trainer)
    # 30 training and 30 validation epoch ends asked for a save: the first flushes, then the timer holds,
    # and the end of the run flushes again.
    assert len(flushes) == 2
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == sorted({e.step for e in events.Scalars("train/loss")})
    assert len(events.Scalars("train/loss")) == 30 and len(events.Scalars("val/loss")) == 30


def test_buffered_logger_writes_hparams_and_every_epoch(tmp_path, make_trainer):
    logger = BufferedTensorBoardLogger(str(tmp_path), name="run", version=0)
    fit(tmp_path, logger, make_trainer)
    hparams = yaml.load((Path(logger.log_dir) / "hparams.yaml").read_text(), Loader=yaml.UnsafeLoader)
    assert hparams["num_outputs"] == 1 and hparams["network"].keywords == {"hidden_sizes": [8]}
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    losses = [e.value for e in events.Scalars("val/loss")]
    assert len(losses) == 30 and all(torch.isfinite(torch.tensor(losses)))


def test_buffered_logger_refuses_a_negative_interval(tmp_path):
    with pytest.raises(ValueError, match="flush_every_s -1 must be a finite number >= 0"):
        BufferedTensorBoardLogger(str(tmp_path), flush_every_s=-1)


@pytest.mark.parametrize("logger_class", [BufferedTensorBoardLogger, TensorBoardLogger])
def test_the_epoch_chart_gets_one_point_per_step_and_none_at_test_time(tmp_path, make_trainer, logger_class):
    # Lightning writes `epoch` with the training and again with the validation metrics of each epoch (same step),
    # and once more, one past the last epoch, when a test follows the fit. Lightning's own logger keeps them all.
    logger = logger_class(str(tmp_path), name="run", version=0)
    model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8]))
    data = SineDataModule(n_train=20, n_eval=10, batch_size="full")
    trainer = make_trainer(max_epochs=5, logger=logger)
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars("epoch")]
    if logger_class is TensorBoardLogger:
        assert len(points) > 5  # what the buffered logger exists to mend
    else:
        assert points == [(epoch, epoch) for epoch in range(5)]  # full batches: one step per epoch
        assert [e.step for e in events.Scalars("test/loss")] == [5]  # the test's metrics are still written


def tags(log_dir: str) -> dict[str, list[str]]:
    events = EventAccumulator(log_dir, size_guidance={"images": 0})
    events.Reload()
    return {kind: sorted(events.Tags()[kind]) for kind in ("scalars", "images")}


@pytest.mark.parametrize("logger_class", [BufferedTensorBoardLogger, TensorBoardLogger])
@pytest.mark.parametrize("val_fraction", [0.0, 0.3])
def test_validation_on_the_test_split_is_tagged_val_on_test(tmp_path, make_trainer, logger_class, val_fraction):
    # Moons without a validation split validate on the test split: TensorBoard must not call that val/. The metric
    # keeps its name in the trainer (checkpoints and early stopping monitor val/loss); only the tags change.
    logger = logger_class(str(tmp_path), name="run", version=0)
    model = Classifier(network=partial(MLP, hidden_sizes=[4]))
    data = MoonsDataModule(n_samples=80, val_fraction=val_fraction, test_fraction=0.25, batch_size="full")
    trainer = make_trainer(max_epochs=2, logger=logger, callbacks=[DecisionBoundary(stage="val", resolution=10)])
    trainer.fit(model, datamodule=data)
    assert "val/loss" in trainer.callback_metrics
    trainer.test(model, datamodule=data, verbose=False)
    logger.finalize("success")
    found = tags(logger.log_dir)
    relabelled = logger_class is BufferedTensorBoardLogger and val_fraction == 0.0
    group = "val_on_test" if relabelled else "val"
    assert {"test/loss", f"{group}/loss", f"{group}/acc"} <= set(found["scalars"])
    assert found["images"] == [f"boundary/{group}"]
    other = "val" if relabelled else "val_on_test"
    assert not [tag for tag in found["scalars"] + found["images"] if other in tag.split("/")]


@pytest.mark.parametrize(("eval_noise_std", "group"), [(0.0, "val_on_test"), (0.2, "val")])
def test_noiseless_sine_validation_measures_the_test_points_and_is_tagged_so(tmp_path, make_trainer,
                                                                             eval_noise_std, group):
    # With eval_noise_std 0 the sine's validation and test splits are the same points (the true function on one
    # grid): the L5 runs logged identical val/ and test/ curves.
    data = SineDataModule(n_train=20, n_eval=10, eval_noise_std=eval_noise_std, batch_size="full")
    same = torch.equal(data.split("val")[1], data.split("test")[1])
    assert same == (group == "val_on_test") and data.validation_split == ("test" if same else "val")
    logger = BufferedTensorBoardLogger(str(tmp_path), name="run", version=0)
    fit(tmp_path, logger, make_trainer, data)
    logger.finalize("success")
    assert f"{group}/loss" in tags(logger.log_dir)["scalars"]


def test_a_validation_split_label_must_be_val_or_test(tmp_path, make_trainer):
    trainer = make_trainer(logger=BufferedTensorBoardLogger(str(tmp_path)))
    with pytest.raises(ValueError, match="validation runs on the 'val' or the 'test' split, not 'train'"):
        label_validation_split(trainer, "train")


def test_a_tag_prefix_gives_a_run_charts_of_its_own_and_leaves_the_epoch_rule(tmp_path, make_trainer):
    logger = BufferedTensorBoardLogger(str(tmp_path), name="run", version=0, prefix="moons")
    data = MoonsDataModule(n_samples=80, batch_size="full")
    make_trainer(max_epochs=3, logger=logger).fit(Classifier(network=partial(MLP, hidden_sizes=[4])), datamodule=data)
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert all(tag.startswith("moons-") for tag in events.Tags()["scalars"]), events.Tags()["scalars"]
    assert {"moons-train/loss", "moons-val_on_test/loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("moons-epoch")] == [0, 1, 2]
