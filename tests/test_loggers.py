from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlbasics.data import SineDataModule
from dlbasics.loggers import BufferedTensorBoardLogger
from dlbasics.models import Regressor
from dlbasics.models.components import MLP


def fit(tmp_path: Path, logger: TensorBoardLogger, make_trainer) -> None:
    model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8]))
    data = SineDataModule(n_train=20, n_eval=10, batch_size="full")
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
