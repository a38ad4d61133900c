"""FastLogging: the same logged values, fewer of Lightning's device moves, and Lightning's own method back on every
way out of a run, on the Lightning versions it is tested with only."""

import signal
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.trainer.connectors.logger_connector import result as lightning_result
from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import FastLogging, NonFiniteError, NonFiniteGuard
from dlbasics.callbacks.runtime import fast_logging
from dlbasics.data import SineDataModule
from dlbasics.lessons.runner import MetricHistory
from dlbasics.models import Regressor
from dlbasics.models.components import MLP

LIGHTNINGS_TO = _ResultMetric.to
ROOT = Path(__file__).resolve().parents[1]
# Outside the tested Lightning versions FastLogging does nothing: the tests that need it active are skipped there.
needs_supported_lightning = pytest.mark.skipif(fast_logging.unsupported_reason() is not None,
                                               reason=str(fast_logging.unsupported_reason()))


def fit(make_trainer, callbacks: list) -> tuple[dict, dict, dict]:
    """Six full-batch epochs of a small regressor: per-epoch metrics, final callback metrics, final weights."""
    torch.manual_seed(0)
    network = partial(MLP, hidden_sizes=[8], activation="tanh", dropout=0.2)
    model = Regressor(input_shape=(1,), num_outputs=1, network=network)
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


@needs_supported_lightning
def test_runs_with_and_without_it_log_the_same_values_and_train_the_same_weights(make_trainer):
    curves, final, weights = fit(make_trainer, [])
    fast_curves, fast_final, fast_weights = fit(make_trainer, [FastLogging()])
    assert fast_curves == curves
    assert set(curves) == {"train/loss", "train/r2", "val/loss", "val/r2"} and len(curves["val/loss"]) == 6
    assert fast_final == final
    assert all(torch.equal(fast_weights[k], weights[k]) for k in weights)


@needs_supported_lightning
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


def installed() -> bool:
    return _ResultMetric.to is not LIGHTNINGS_TO


def assert_removed() -> None:
    """Lightning's own method is back and nobody is counted as needing ours."""
    assert _ResultMetric.to is LIGHTNINGS_TO
    assert fast_logging._Patch.users == 0 and fast_logging._Patch.original is None


class Probe(Callback):
    """Records at every training batch whether the replacement is installed; optionally raises in a hook."""

    def __init__(self, raise_in: str | None = None) -> None:
        self.seen: list[bool] = []
        if raise_in is not None:
            setattr(self, raise_in, self._fail)

    def on_train_batch_start(self, *args) -> None:
        self.seen.append(installed())

    def _fail(self, *args) -> None:
        raise RuntimeError("a callback hook failed")


class Tiny(L.LightningModule):
    """Logs its loss every step; raises ``error`` in ``training_step`` at global step ``fail_at``."""

    def __init__(self, fail_at: int | None = None, error: type[BaseException] = RuntimeError,
                 nan_at: int | None = None) -> None:
        super().__init__()
        self.net, self.fail_at, self.error, self.nan_at = nn.Linear(1, 1), fail_at, error, nan_at

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at:
            raise self.error("training_step failed")
        loss = F.mse_loss(self.net(batch[0]), batch[1])
        self.log("train/loss", loss)
        return loss * float("nan") if self.global_step == self.nan_at else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def tiny_data() -> DataLoader:
    x = torch.linspace(-1, 1, 8).unsqueeze(1)
    return DataLoader(TensorDataset(x, 2 * x), batch_size=4)  # two steps an epoch


@needs_supported_lightning
def test_lightnings_method_is_back_after_the_run_and_after_nested_use(make_trainer):
    fit(make_trainer, [FastLogging()])
    assert_removed()
    with FastLogging():
        with FastLogging():
            assert installed()
        assert installed()  # the outer user still needs it
    assert_removed()
    reentered = FastLogging()
    with reentered:
        with reentered:  # the same instance twice
            pass
        assert installed()
    assert_removed()


@needs_supported_lightning
@pytest.mark.parametrize("failure", ["callback_hook", "training_step", "guard_at_fit_end", "keyboard_interrupt"])
def test_a_failed_run_puts_lightnings_method_back(make_trainer, failure):
    """A failed run skips teardown; on_exception must remove the replacement, whatever failed and wherever."""
    probe = Probe(raise_in="on_train_epoch_end" if failure == "callback_hook" else None)
    model = Tiny(fail_at=1 if failure == "training_step" else 2 if failure == "keyboard_interrupt" else None,
                 error=KeyboardInterrupt if failure == "keyboard_interrupt" else RuntimeError,
                 nan_at=1 if failure == "guard_at_fit_end" else None)
    guard = [NonFiniteGuard()] if failure == "guard_at_fit_end" else []
    trainer = make_trainer(max_epochs=3, callbacks=[FastLogging(), probe, *guard])
    expected = {"callback_hook": RuntimeError, "training_step": RuntimeError, "guard_at_fit_end": NonFiniteError,
                "keyboard_interrupt": SystemExit}[failure]  # Lightning turns Ctrl-C into sys.exit(1)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(expected):
            trainer.fit(model, tiny_data())
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after a KeyboardInterrupt
    assert probe.seen and all(probe.seen)  # it was active during the run
    assert_removed()


@needs_supported_lightning
def test_nested_users_keep_it_until_the_last_one_ends(make_trainer):
    # Two callbacks in one run.
    probe = Probe()
    make_trainer(max_epochs=1, callbacks=[FastLogging(), FastLogging(), probe]).fit(Tiny(), tiny_data())
    assert all(probe.seen)
    assert_removed()
    # A with block around a run that has the callback, even one that fails.
    with FastLogging():
        make_trainer(max_epochs=1, callbacks=[FastLogging()]).fit(Tiny(), tiny_data())
        with pytest.raises(RuntimeError):
            make_trainer(max_epochs=1, callbacks=[FastLogging()]).fit(Tiny(fail_at=0), tiny_data())
        assert installed() and fast_logging._Patch.users == 1
    assert_removed()

    # A with block inside a run: when it ends, the run still has the replacement.
    class InnerBlock(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            with FastLogging():
                pass
            self.after = installed()

    inner = InnerBlock()
    make_trainer(max_epochs=1, callbacks=[FastLogging(), inner]).fit(Tiny(), tiny_data())
    assert inner.after
    assert_removed()


@pytest.mark.parametrize("version", ["2.6.3", "2.7.0", "3.0.0"])
def test_outside_the_tested_lightning_versions_it_warns_and_changes_nothing(make_trainer, monkeypatch, version):
    monkeypatch.setattr(fast_logging, "LIGHTNING_VERSION", version)
    probe = Probe()
    message = rf"tested with Lightning .*<2\.7, and this is Lightning {version}; logging runs at its usual speed"
    with pytest.warns(UserWarning, match=message):
        make_trainer(max_epochs=1, callbacks=[FastLogging(), probe]).fit(Tiny(), tiny_data())
    with pytest.warns(UserWarning, match=message):
        with FastLogging():
            assert not installed()
    assert probe.seen == [False, False]
    assert_removed()


@pytest.mark.parametrize(("version", "tested"), [("2.6.4", True), ("2.6.6", True), ("2.6.9", True),
                                                 ("2.6.3", False), ("2.7.0rc1", False), ("2.7.0", False)])
def test_the_tested_range_is_explicit(monkeypatch, version, tested):
    monkeypatch.setattr(fast_logging, "LIGHTNING_VERSION", version)
    assert (fast_logging.unsupported_reason() is None) == tested


def result_holding(value: torch.Tensor) -> _ResultMetric:
    result = _ResultMetric(_Metadata(fx="training_step", name="train/loss"), is_tensor=True)
    result.to(value.device)
    result.update(value, batch_size=4)
    return result


@needs_supported_lightning
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
    from dlbasics.lightning_cli import cli_main

    monkeypatch.chdir(tmp_path)
    cli = cli_main(["fit", "--config", str(ROOT / "configs/sine_tinynet.yaml"), "--trainer.max_epochs", "3",
                    "--trainer.enable_progress_bar", "false", "--trainer.callbacks+=dlbasics.callbacks.FastLogging"])
    assert any(isinstance(callback, FastLogging) for callback in cli.trainer.callbacks)
    assert _ResultMetric.to is LIGHTNINGS_TO  # removed when the fit ended
    assert set(cli.trainer.callback_metrics) >= {"train/loss", "val/loss"}
