"""Every run's hyperparameters and final metrics reach TensorBoard's HParams dashboard (read with its own backend)."""

from pathlib import Path

import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups, metadata

from dlbasics.lessons import LESSONS
from dlbasics.lessons.cli import lesson_main
from dlbasics.lessons.runner import Run, run_seeds
from dlbasics.lightning_cli import cli_main
from dlbasics.loggers import final_metrics, flatten_init_args, override_hparams, write_hparams

ROOT = Path(__file__).resolve().parents[1]


def dashboard(logdir: Path) -> dict[str, tuple[dict, dict]]:
    """``{session run: (hparams, metrics)}`` as TensorBoard's HParams dashboard lists them for ``logdir``."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), data_provider=provider))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=1000,
                                               allowed_statuses=[api_pb2.STATUS_SUCCESS])
    response = list_session_groups.Handler(context.RequestContext(), backend, "", request).run()
    return {s.name: ({k: getattr(v, v.WhichOneof("kind")) for k, v in g.hparams.items()},
                     {m.name.tag: m.value for m in s.metric_values})
            for g in response.session_groups for s in g.sessions}


def plugin_data(folder: Path) -> dict[str, bytes]:
    """The HParams plugin summaries (``_hparams_/session_start_info``, ...) of a folder's event file."""
    events = EventAccumulator(str(folder))
    events.Reload()
    try:
        return events.PluginTagToContent(metadata.PLUGIN_NAME)
    except KeyError:
        return {}


def start_info(folder: Path) -> dict:
    content = plugin_data(folder)[metadata.SESSION_START_INFO_TAG]
    hparams = metadata.parse_session_start_info_plugin_data(content).hparams
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in hparams.items()}


def last_scalar(folder: Path, tag: str) -> float:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events.Scalars(tag)[-1].value


def test_overrides_become_named_plain_values():
    assert override_hparams(["--model.network.dropout=0.3", "--model.optimizer=torch.optim.SGD",
                             "--model.init_args.optimizer.lr=1e-05", "--data.noise_std=1.0", "--trainer.max_epochs",
                             "30", "--model.network.hidden_sizes=[64, 64]", "--model.network.batch_norm=true",
                             "--seed_everything=3", "--data.seed=3", "--trainer.callbacks=[]"]) == {
        "network.dropout": 0.3, "optimizer": "torch.optim.SGD", "optimizer.lr": 1e-05, "data.noise_std": 1.0,
        "trainer.max_epochs": 30, "network.hidden_sizes": "[64, 64]", "network.batch_norm": True}


def test_configs_flatten_to_the_same_names():
    config = {"network": {"class_path": "MLP", "init_args": {"hidden_sizes": [64, 64], "dropout": 0.3, "x": None}},
              "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01, "betas": (0.9, 0.999)}}}
    assert flatten_init_args(config) == {"network": "MLP", "network.hidden_sizes": "[64, 64]", "network.dropout": 0.3,
                                         "optimizer": "torch.optim.Adam", "optimizer.lr": 0.01,
                                         "optimizer.betas": "[0.9, 0.999]"}
    assert final_metrics({"train/loss": 0.5, "val/acc": 0.9, "epoch": 3.0, "grad/x": 1.0, "test/loss": float("nan")}) \
        == {"final/train/loss": 0.5, "final/val/acc": 0.9}


def test_a_session_holds_typed_hparams_and_its_final_metrics(tmp_path):
    write_hparams(tmp_path / "hparams", {"run": "a", "fast": True, "seed": 3, "lr": 0.1, "unset": None},
                  {"final/train/loss": 0.25}, step=7)
    assert start_info(tmp_path / "hparams") == {"run": "a", "fast": True, "seed": 3.0, "lr": 0.1}
    end = metadata.parse_session_end_info_plugin_data(plugin_data(tmp_path / "hparams")[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    assert metadata.EXPERIMENT_TAG not in plugin_data(tmp_path / "hparams")  # it would hide the other runs' hparams
    assert dashboard(tmp_path) == {"hparams": ({"run": "a", "fast": True, "seed": 3.0, "lr": 0.1},
                                               {"final/train/loss": 0.25})}


def test_a_solo_seed_gets_a_row_and_seeds_trained_together_one_with_their_mean_final_metrics(tmp_path):
    run = Run("deep_relu", "deep_sigmoid.yaml", ("--model.network.activation=relu", "--trainer.max_epochs=2",
                                                 "--trainer.callbacks=[]"))
    together = run_seeds(run, tmp_path / "lesson", [0, 1])
    alone = run_seeds(run, tmp_path / "lesson", [2])
    rows = dashboard(tmp_path)
    # A row per seed would be a TensorBoard run per seed: past 40, TensorBoard selects none of a lesson's runs.
    assert set(rows) == {"lesson/deep_relu/seeds/hparams", "lesson/deep_relu/seed_2/hparams"}
    for name, seeds, results in [("lesson/deep_relu/seeds/hparams", {"seeds": "0, 1"}, together.results),
                                 ("lesson/deep_relu/seed_2/hparams", {"seed": 2}, [alone.first])]:
        hparams, metrics = rows[name]
        assert {key: hparams[key] for key in ("run", "config", *seeds, "fast", "trainer.max_epochs",
                                              "trainer.precision")} == {
            "run": "deep_relu", "config": "deep_sigmoid.yaml", **seeds, "fast": False, "trainer.max_epochs": 2,
            "trainer.precision": "32-true"}
        # The override, and the config's own settings (a sweep's baseline shows its value too), as `fit` names them.
        assert {key: hparams[key] for key in ("network.activation", "network.batch_norm", "network.hidden_sizes",
                                              "optimizer", "optimizer.lr", "data", "data.n_samples")} == {
            "network.activation": "relu", "network.batch_norm": False,
            "network.hidden_sizes": "[32, 32, 32, 32, 32, 32]", "optimizer": "torch.optim.Adam", "optimizer.lr": 0.07,
            "data": "dlbasics.data.Toy2DDataModule", "data.n_samples": 200}
        assert "data.seed" not in hparams  # it is the seed
        assert set(metrics) == {"final/train/loss", "final/train/acc"}  # the run's grad/... scalars stay out
        mean = sum(r.curves["train/loss"][-1] for r in results) / len(results)
        assert metrics["final/train/loss"] == pytest.approx(mean)
    assert together.results[0].curves["train/loss"][-1] != pytest.approx(together.results[1].curves["train/loss"][-1])
    assert rows["lesson/deep_relu/seed_2/hparams"][1]["final/train/loss"] == pytest.approx(
        last_scalar(alone.first.log_dir, "train/loss"))


def expected(text: str):
    """An override's value as the dashboard should show it: a number, a bool or the text."""
    try:
        return float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text, text)


@pytest.mark.slow
def test_every_run_of_a_fast_lesson_has_its_compared_values(tmp_path):
    assert lesson_main(["activations", "--fast", "--seeds", "2", "--out", str(tmp_path)]) == 0
    rows = dashboard(tmp_path)
    runs = LESSONS["activations"].load().RUNS
    found = {(hparams["run"], hparams.get("seeds", hparams.get("seed"))): hparams for hparams, _ in rows.values()}
    assert set(found) == {(run.name, "0, 1") for run in runs}  # the lesson trains each run's seeds together
    for run in runs:
        hparams = found[(run.name, "0, 1")]
        assert hparams["config"] == run.config and hparams["fast"] is True
        for override in (*run.overrides, *run.fast):  # --model.network.activation=relu -> network.activation
            key, _, text = override.removeprefix("--").partition("=")
            if not key.startswith("trainer.callbacks"):
                assert hparams[key.removeprefix("model.")] == expected(text), (run.name, override)
    assert all("final/train/loss" in metrics for _, metrics in rows.values())


def test_dlbasics_fit_logs_the_model_and_data_settings_with_final_metrics(tmp_path):
    cli_main(["fit", "--config", str(ROOT / "configs" / "moons_mlp.yaml"), "--trainer.max_epochs=1",
              f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.limit_train_batches=3",
              "--trainer.enable_progress_bar=false", "--model.network.dropout=0.3", "--data.n_samples=400"])
    run = tmp_path / "moons_mlp" / "version_0"
    (hparams, metrics), = dashboard(tmp_path).values()
    assert {name: hparams[name] for name in ("config", "seed", "model", "network", "network.dropout",
                                             "network.hidden_sizes", "optimizer", "optimizer.lr", "data",
                                             "data.n_samples", "data.noise")} == {
        "config": "moons_mlp.yaml", "seed": 0, "model": "dlbasics.models.Classifier",
        "network": "dlbasics.models.components.MLP", "network.dropout": 0.3, "network.hidden_sizes": "[64, 64]",
        "optimizer": "torch.optim.Adam", "optimizer.lr": 0.003, "data": "dlbasics.data.MoonsDataModule",
        "data.n_samples": 400, "data.noise": 0.25}
    assert hparams["network.batch_norm"] is True
    assert hparams["trainer.precision"] == "32-true"  # the precision it trained in, which the config may not say
    # moons_mlp validates on its test split: its validation is tagged so, in the run and in the dashboard
    assert set(metrics) == {"final/train/loss", "final/train/acc", "final/val_on_test/loss", "final/val_on_test/acc"}
    assert metrics["final/val_on_test/loss"] == pytest.approx(last_scalar(run, "val_on_test/loss"))
    assert plugin_data(run) == {}  # no second, "hp_metric" session in the run's own event file
