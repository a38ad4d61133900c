from pathlib import Path

import pytest
import torch
from lightning.pytorch.trainer.connectors.logger_connector import result as lightning_result
from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric

from dlbasics.callbacks import FastLogging
from dlbasics.callbacks import fast_logging
from dlbasics.data import SineDataModule
from dlbasics.lessons.runner import MetricHistory
from dlbasics.models import Regressor

LIGHTNINGS_TO = _ResultMetric.to
ROOT = Path(__file__).resolve().parents[1]


def fit(make_trainer, callbacks: list) -> tuple[dict, dict, dict]:
    """Six full-batch epochs of a small regressor: per-epoch metrics, final callback metrics, final weights."""
    torch.manual_seed(0)
    model = Regressor(input_shape=(1,), num_outputs=1, hidden_sizes=[8], activation="tanh", dropout=0.2)
    history = MetricHistory()
    trainer = make_trainer(max_epochs=6, callbacks=[history, *callbacks])
    trainer.fit(model, SineDataModule(n_train=30, n_eval=20, batch_size="full", seed=0))
    return history.curves, dict(trainer.callback_metrics), model.state_dict()


def counting_lightning_to(monkeypatch) -> list[int]:
    calls = [0]

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return LIGHTNINGS_TO(self, *args, **kwargs)
    monkeypatch.setattr(_ResultMetric, "to", counted)
    return calls


def test_runs_with_and_without_it_log_the_same_values_and_train_the_same_weights(make_trainer):
    curves, final, weights = fit(make_trainer, [])
    fast_curves, fast_final, fast_weights = fit(make_trainer, [FastLogging()])
    assert fast_curves == curves
    assert set(curves) == {"train/loss", "train/r2", "val/loss", "val/r2"} and len(curves["val/loss"]) == 6
    assert fast_final == final
    assert all(torch.equal(fast_weights[k], weights[k]) for k in weights)


def test_it_skips_lightnings_move_once_the_results_live_on_the_device(make_trainer, monkeypatch):
    calls = counting_lightning_to(monkeypatch)
    fit(make_trainer, [])
    plain = calls[0]
    calls[0] = 0
    fit(make_trainer, [FastLogging()])
    # Without it, one move per self.log call (4 names x 6 epochs, plus the sanity check) and the end-of-loop moves
    # to CPU; with it, only the first call of each name and the end-of-loop moves remain.
    assert plain >= 24
    assert calls[0] <= plain - 18


def test_lightnings_method_is_back_after_the_run_and_after_nested_use(make_trainer):
    fit(make_trainer, [FastLogging()])
    assert _ResultMetric.to is LIGHTNINGS_TO
    with FastLogging():
        with FastLogging():
            assert _ResultMetric.to is not LIGHTNINGS_TO
        assert _ResultMetric.to is not LIGHTNINGS_TO  # the outer user still needs it
    assert _ResultMetric.to is LIGHTNINGS_TO


def result_holding(value: torch.Tensor) -> _ResultMetric:
    result = _ResultMetric(_Metadata(fx="training_step", name="train/loss"), is_tensor=True)
    result.to(value.device)
    result.update(value, batch_size=4)
    return result


def test_a_result_with_a_state_elsewhere_is_moved_by_lightning(monkeypatch):
    result = result_holding(torch.tensor(2.0))
    cpu = torch.device("cpu")
    moved = []
    monkeypatch.setattr(_ResultMetric, "to", lambda self, *args, **kwargs: moved.append(args))  # Lightning's move
    with FastLogging():
        result.to(cpu)
        assert moved == []  # everything already on the CPU: skipped
        result.cumulated_batch_size = torch.tensor(4, device="meta")  # one state on another device
        assert not fast_logging.on_device(result, cpu)
        result.to(cpu)
        result.to(device=cpu)  # a call of another form
    assert moved == [(cpu,), ()]


def test_a_result_not_yet_updated_goes_through_lightning():
    fresh = _ResultMetric(_Metadata(fx="training_step", name="val/acc"), is_tensor=False)
    assert not fast_logging.on_device(fresh, torch.device("cpu"))


def test_with_a_lightning_it_was_not_written_for_it_warns_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(fast_logging, "_ResultMetric", None)
    with pytest.warns(UserWarning, match="logging runs at its usual speed"):
        with FastLogging():
            assert lightning_result._ResultMetric.to is LIGHTNINGS_TO
    assert lightning_result._ResultMetric.to is LIGHTNINGS_TO


def test_it_is_configurable_from_the_command_line(tmp_path, monkeypatch):
    from dlbasics.cli import cli_main

    monkeypatch.chdir(tmp_path)
    cli = cli_main(["fit", "--config", str(ROOT / "configs/sine_tinynet.yaml"), "--trainer.max_epochs", "3",
                    "--trainer.enable_progress_bar", "false", "--trainer.callbacks+=dlbasics.callbacks.FastLogging"])
    assert any(isinstance(callback, FastLogging) for callback in cli.trainer.callbacks)
    assert _ResultMetric.to is LIGHTNINGS_TO  # removed when the fit ended
    assert set(cli.trainer.callback_metrics) >= {"train/loss", "val/loss"}
