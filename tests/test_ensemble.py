"""A lesson run's seeds trained as one ``SeedEnsemble`` fit must give what each seed's solo run gives, bit for bit."""

import re
from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from dlbasics.callbacks import ActivationStats, ActivationSwap, DecisionBoundary, GradientFlowMonitor, NonFiniteGuard
from dlbasics.data import Toy2DDataModule
from dlbasics.data.zipped import ZippedDataModule
from dlbasics.lessons.ensemble import can_ensemble, run_ensemble
from dlbasics.lessons.runner import Run, run_lesson_run, run_seeds
from dlbasics.loggers import BufferedTensorBoardLogger, tag_for
from dlbasics.models import Classifier
from dlbasics.models.components import MLP
from dlbasics.models.ensemble import SeedEnsemble, seed_layout

SEEDS = [0, 1, 2]
NO_DROPOUT = Run("no_dropout", "toy2d_dropout.yaml", ("--model.network.dropout=0.0", "--trainer.max_epochs=5"))
DROPOUT = Run("dropout", "toy2d_dropout.yaml", ("--model.network.dropout=0.5", "--trainer.max_epochs=5"))
TESTED = Run("tested", "sine_tinynet.yaml", ("--model.network.dropout=0.3", "--trainer.max_epochs=4"), test=True)
# GradientFlowMonitor, ActivationStats and an ActivationSwap at epoch 2 (tanh -> relu), all from the config.
SWAP = Run("swap", "activation_swap.yaml",
           ("--trainer.max_epochs=4", "--trainer.callbacks.schedule=[{at_epoch: 2, from_kind: tanh, to: relu}]"))


def both(run: Run, tmp_path: Path):
    """``run`` at ``SEEDS`` as one ensemble fit, and each seed's solo run."""
    ensemble = run_ensemble(run, tmp_path / "ensemble", SEEDS)
    solo = [run_lesson_run(run, tmp_path / "solo", seed, version=f"seed_{seed}") for seed in SEEDS]
    return ensemble.results, solo


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    return {run.name: both(run, tmp / run.name) for run in (NO_DROPOUT, DROPOUT, TESTED, SWAP)}


def assert_same_weights(ensemble, solo):
    for mine, theirs in zip(ensemble, solo):
        state, reference = mine.model.state_dict(), theirs.model.state_dict()
        assert list(state) == list(reference)
        for name in reference:
            assert torch.equal(state[name], reference[name]), name


@pytest.mark.parametrize("name", ["no_dropout", "dropout", "tested", "swap"])
def test_each_member_trains_bit_for_bit_as_its_solo_run(runs, name):
    # Exact, not close: each member runs the same ops on the same tensors as alone (the summed loss passes each
    # member exactly its own gradient, Adam/SGD update each parameter alone), and with dropout each member draws
    # from its own generator, saved right after it was built as the solo run's is.
    ensemble, solo = runs[name]
    assert_same_weights(ensemble, solo)
    for mine, theirs in zip(ensemble, solo):
        assert mine.curves == theirs.curves  # the same keys (train/loss, val/acc, ...) and the same values
        assert mine.final == theirs.final
    assert len({ensemble[0].curves["train/loss"][-1], ensemble[1].curves["train/loss"][-1]}) == 2  # seeds differ


def test_each_member_has_its_own_model_and_data_like_the_solo_run(runs):
    ensemble, solo = runs["tested"]
    for seed, mine, theirs in zip(SEEDS, ensemble, solo):
        assert mine.data.seed == seed and torch.equal(mine.data.split("train")[0], theirs.data.split("train")[0])
        assert mine.evaluate("test") == theirs.evaluate("test")
        assert set(mine.final) == {"test/loss", "test/r2"}
        assert mine.log_dir == ensemble[0].log_dir and mine.log_dir.name == "seeds"


def test_callback_views_show_one_seed_under_solo_layer_names(runs):
    ensemble, solo = runs["swap"]
    for mine, theirs in zip(ensemble, solo):
        series = mine.callback(GradientFlowMonitor).series("mean_abs")
        assert list(series) == ["network.layers.0", "network.layers.2"]
        assert series == theirs.callback(GradientFlowMonitor).series("mean_abs")
        assert len(series["network.layers.0"]) == 4
        labels = mine.callback(GradientFlowMonitor).labels  # the lessons' figure legends
        assert labels == theirs.callback(GradientFlowMonitor).labels
        assert labels == {"network.layers.0": "linear1 (network.layers.0)",
                          "network.layers.2": "linear2 (network.layers.2)"}
        stats = mine.callback(ActivationStats).history
        assert list(stats[0]["layers"]) == ["network.layers.1"]
        assert stats == theirs.callback(ActivationStats).history
        assert [s.at_epoch for s in mine.callback(ActivationSwap).schedule] == [2]
        assert mine.callback(ActivationSwap).history == theirs.callback(ActivationSwap).history
        assert mine.callback(ActivationSwap).history[0]["layers"] == ["network.layers.1"]
        assert mine.callback(NonFiniteGuard).history == []


def test_tensorboard_gets_one_chart_per_metric_with_every_seeds_curve(runs):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar import layout_pb2

    log_dir = runs["tested"][0][0].log_dir
    values = [value for events in sorted(log_dir.glob("events.out.tfevents.*"))  # fit's, and test's
              for event in EventFileLoader(str(events)).Load() for value in event.summary.value]
    layouts = [layout_pb2.Layout.FromString(value.tensor.string_val[0]) for value in values
               if value.tag == "custom_scalars__config__"]
    (layout,) = layouts
    charts = {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}
    # sine_tinynet's validation points are its test points (noiseless): tagged val_on_test/, in the layout too
    assert charts["val_on_test/loss"] == ["^val_on_test/loss/seed_"] and charts["test/r2"] == ["^test/r2/seed_"]
    tags = {value.tag for value in values}
    assert {f"val_on_test/loss/seed_{seed}" for seed in SEEDS} <= tags  # what the chart's pattern picks up


def test_the_seed_layout_follows_the_loggers_tags(tmp_path):
    logger = BufferedTensorBoardLogger(str(tmp_path), prefix="moons")
    logger.validation_split = "test"
    member = Classifier(input_shape=(2,), num_outputs=2, network=partial(MLP, hidden_sizes=[4]))
    layout = seed_layout(member, partial(tag_for, logger))
    chart = layout["seeds: moons-val_on_test"]["moons-val_on_test/acc"]
    assert chart == ["Multiline", [r"^moons\-val_on_test/acc/seed_"]]
    assert re.match(layout["seeds: moons-train"]["moons-train/loss"][1][0], "moons-train/loss/seed_3")


def test_run_seeds_trains_an_ensemble_when_it_can(tmp_path):
    run = Run("r", "toy2d_dropout.yaml", ("--trainer.max_epochs=2",))
    runs = run_seeds(run, tmp_path, [0, 1])
    assert [r.log_dir.relative_to(tmp_path).as_posix() for r in runs.results] == ["r/seeds", "r/seeds"]
    assert runs.curves("val/acc").shape == (2, 2)
    one = run_seeds(run, tmp_path, [3])  # one seed: the plain solo run
    assert one.first.log_dir.relative_to(tmp_path).as_posix() == "r/seed_3"


@pytest.mark.parametrize(("run", "callbacks", "expected"), [
    (NO_DROPOUT, [], True),
    (SWAP, [GradientFlowMonitor()], True),
    (NO_DROPOUT, [DecisionBoundary()], True),  # figure callbacks draw the first seed (FirstMemberFigure)
    (Run("m", "mnist_mlp.yaml"), [], False),
    (Run("s", "toy2d_dropout.yaml", ("--model.lr_scheduler=torch.optim.lr_scheduler.ExponentialLR",)), [], False),
    (Run("c", "toy2d_dropout.yaml", ("--trainer.gradient_clip_val=1.0",)), [], False),
])
def test_can_ensemble(run, callbacks, expected):
    assert can_ensemble(run, callbacks) is expected


def classifiers(seeds=(0, 1), **kwargs):
    return [Classifier(network=partial(MLP, hidden_sizes=[4]), **kwargs) for _ in seeds]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lr_scheduler": partial(torch.optim.lr_scheduler.StepLR, step_size=2)}, "lr_scheduler"),
    ({"optimizer": torch.optim.LBFGS}, "LBFGS"),
])
def test_ensemble_refuses_settings_that_couple_members(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SeedEnsemble(classifiers(**kwargs), [0, 1])


def test_ensemble_refuses_members_with_different_optimizers():
    members = [Classifier(optimizer=partial(torch.optim.Adam, lr=lr)) for lr in (0.1, 0.2)]
    with pytest.raises(ValueError, match="member 1's optimizer Adam .*0.2"):
        SeedEnsemble(members, [0, 1])


def test_ensemble_refuses_gradient_clipping(tmp_path):
    data = ZippedDataModule([Toy2DDataModule(seed=s, batch_size="full") for s in (0, 1)])
    trainer = Trainer(max_epochs=1, gradient_clip_val=0.5, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match=r"gradient_clip_val=0.5"):
        trainer.fit(SeedEnsemble(classifiers(), [0, 1]), datamodule=data)


def test_zipped_datamodule_refuses_loaders_of_different_lengths():
    data = ZippedDataModule([Toy2DDataModule(n_samples=n, batch_size=16) for n in (100, 200)])
    data.setup("fit")
    with pytest.raises(ValueError, match=r"train loaders give \[\d+, \d+\] batches"):
        data.train_dataloader()
