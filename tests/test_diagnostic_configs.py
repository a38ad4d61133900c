"""The diagnostics configs show their lesson's phenomenon when run through the CLI."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlbasics.callbacks import GradientFlowMonitor
from dlbasics.lightning_cli import cli_main

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit(config: str, tmp_path: Path, *extra: str):
    return cli_main(["fit", "--config", str(ROOT / "configs" / config), *QUIET,
                     "--trainer.logger.init_args.save_dir", str(tmp_path / "lightning_logs"), *extra])


def mean_grad(cli, layer: str) -> float:
    (monitor,) = [c for c in cli.trainer.callbacks if isinstance(c, GradientFlowMonitor)]
    values = monitor.series("mean_abs")[layer]
    return sum(values) / len(values)


def test_deep_sigmoid_gradients_vanish_towards_the_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sigmoid = fit("deep_sigmoid.yaml", tmp_path)
    relu = fit("deep_sigmoid.yaml", tmp_path, "--model.init_args.network.init_args.activation", "relu")
    first, last = "network.layers.0", "network.layers.10"  # first and last hidden Linear
    assert mean_grad(sigmoid, first) < 0.01 * mean_grad(sigmoid, last)
    assert mean_grad(sigmoid, first) < 0.01 * mean_grad(relu, first)
    events = EventAccumulator(sigmoid.trainer.log_dir)
    events.Reload()
    assert {"grad/linear1 (network.layers.0)/mean_abs", "grad/linear7 (network.layers.12)/mean_abs",
            "act/act1 (network.layers.1)/saturated_frac"} <= set(events.Tags()["scalars"])
    assert "grad/flow_heatmap" in events.Tags()["images"]


def test_activation_swap_shows_in_the_loss_and_is_marked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = fit("activation_swap.yaml", tmp_path)
    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    loss = [e.value for e in events.Scalars("train/loss")]
    assert len(loss) == 60
    assert loss[35] > 1.5 * loss[34]  # the new activation disturbs the trained weights
    assert loss[-1] < loss[35]  # ... and training recovers
    assert [(e.step, e.value) for e in events.Scalars("activation/swap")] == [(35, 1.0)]
    assert type(cli.model.network.layers[1]).__name__ == "ReLU"
