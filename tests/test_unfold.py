"""Training unfolds in TensorBoard: sliders of boundaries, fits and per-unit maps, read back from the event files."""

from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import ConfusionMatrix, DecisionBoundary, NeuronMaps, RegressionFit
from dlbasics.data import MoonsDataModule, SineDataModule, Toy2DDataModule
from dlbasics.lessons.ensemble import FirstMemberFigure, can_ensemble, run_ensemble
from dlbasics.lessons.runner import Run, run_lesson_run
from dlbasics.models import Classifier, Regressor
from dlbasics.models.components import MLP

# As the lessons run them: a slider of about 10 figures over the fit, one PNG file per figure kind.
SLIDER = dict(stage="train", figures_per_fit=10, pngs="last", resolution=30)
TOY = Run("toy", "toy2d_dropout.yaml", ("--trainer.max_epochs=10",))


def image_steps(folder: Path) -> dict[str, list[int]]:
    """TensorBoard image tag -> the global steps it was logged at, read with TensorBoard's own reader."""
    events = EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    return {tag: [event.step for event in events.Images(tag)] for tag in events.Tags()["images"]}


def no_repeats(steps: dict[str, list[int]]) -> None:
    pairs = [(tag, step) for tag, logged in steps.items() for step in logged]
    assert len(pairs) == len(set(pairs)), steps


def moons_run(make_trainer, tmp_path, callbacks, max_epochs=20, hidden=(8, 6), activation="tanh"):
    torch.manual_seed(0)
    dm = MoonsDataModule(n_samples=120, batch_size="full")
    model = Classifier(network=partial(MLP, hidden_sizes=list(hidden), activation=activation))
    logger = TensorBoardLogger(tmp_path, name="run", version=0)
    trainer = make_trainer(max_epochs=max_epochs, logger=logger, callbacks=callbacks)
    return trainer, model, dm, Path(logger.log_dir)


def test_a_lesson_like_run_logs_a_boundary_slider_and_a_test_image_under_its_own_tag(make_trainer, tmp_path):
    train, test = DecisionBoundary(**SLIDER), DecisionBoundary(stage="test", resolution=30)
    trainer, model, dm, folder = moons_run(make_trainer, tmp_path, [train, test], max_epochs=25)
    trainer.fit(model, dm)
    trainer.test(model, dm)
    steps = image_steps(folder)
    assert set(steps) == {"boundary/train", "boundary/test"}
    assert steps["boundary/train"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 25]  # every 25 // 10 epochs, end
    assert steps["boundary/test"] == [25]  # the last training step, but its own tag
    no_repeats(steps)
    assert {p.name for p in (folder / "figures").glob("*.png")} == {"decision_boundary_train.png",
                                                                    "decision_boundary_test.png"}
    assert train.history[-1]["n_points"] == len(dm.split("train")[1])  # the points it trains on


def test_a_validate_run_after_fit_gets_its_own_tags(make_trainer, tmp_path):
    callbacks = [DecisionBoundary(every_n_epochs=2, resolution=10), ConfusionMatrix(stage="val")]
    trainer, model, dm, folder = moons_run(make_trainer, tmp_path, callbacks, max_epochs=4)
    trainer.fit(model, dm)
    trainer.validate(model, dm)
    steps = image_steps(folder)
    assert steps == {"boundary/val": [2, 4], "boundary/val/validate": [4],
                     "confusion/val": [1, 2, 3, 4], "confusion/val/validate": [4]}


def test_a_regression_fit_slider_has_ten_steps(make_trainer, tmp_path):
    torch.manual_seed(0)
    dm = SineDataModule(n_train=20, n_eval=30, batch_size="full")
    model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8]))
    logger = TensorBoardLogger(tmp_path, name="run", version=0)
    callback = RegressionFit(figures_per_fit=10, pngs="last", resolution=20)
    make_trainer(max_epochs=30, logger=logger, callbacks=[callback]).fit(model, dm)
    steps = image_steps(Path(logger.log_dir))
    assert steps == {"regression/fit": list(range(3, 31, 3))}  # every 3 epochs, the last one included
    assert [p.name for p in (Path(logger.log_dir) / "figures").glob("*.png")] == ["regression_fit.png"]


@pytest.mark.parametrize("bad", [dict(figures_per_fit=0), dict(pngs="some"), dict(stage="test")])
def test_slider_settings_are_checked(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        NeuronMaps(**bad)
    if "stage" not in bad:
        with pytest.raises(ValueError, match=next(iter(bad))):
            DecisionBoundary(**bad)


def test_neuron_maps_one_tag_per_hidden_layer_with_each_units_activation(make_trainer, tmp_path):
    callback = NeuronMaps(every_n_epochs=2, resolution=12, max_units=5)
    trainer, model, dm, folder = moons_run(make_trainer, tmp_path, [callback], max_epochs=4)
    model.train()
    trainer.fit(model, dm)
    steps = image_steps(folder)
    assert steps == {"neurons/network.layers.1": [2, 4], "neurons/network.layers.3": [2, 4]}
    last = callback.last
    assert last["maps"]["network.layers.1"].shape == (12, 12, 5)  # 8 units, 5 shown
    assert last["maps"]["network.layers.3"].shape == (12, 12, 5)
    assert callback.history[-1]["units"] == {"network.layers.1": 8, "network.layers.3": 6}
    # A grid point by hand: maps are indexed [y, x, unit], the grid spans the training points plus the padding.
    x_train = dm.split("train")[0]
    assert float(last["grid_x"][0]) == pytest.approx(float(x_train[:, 0].min()) - 0.5)
    point = torch.stack([last["grid_x"][3], last["grid_y"][9]])[None]  # (1, 2)
    layers = model.network.layers
    with torch.no_grad():
        first = torch.tanh(layers[0](point))
        second = torch.tanh(layers[2](first))
    torch.testing.assert_close(last["maps"]["network.layers.1"][9, 3], first[0, :5])
    torch.testing.assert_close(last["maps"]["network.layers.3"][9, 3], second[0, :5])
    assert model.training and not any(m._forward_hooks for m in model.modules())  # modes back, hooks removed
    assert len(list((folder / "figures").glob("neurons_network.layers.1_*.png"))) == 2


def test_neuron_maps_keep_frozen_submodules_in_eval_mode(make_trainer, tmp_path):
    callback = NeuronMaps(every_n_epochs=1, resolution=6)
    trainer, model, dm, _ = moons_run(make_trainer, tmp_path, [callback], max_epochs=1)
    model.network.layers[1].eval()  # a submodule the user froze stays in eval mode
    callback.points = {"x": dm.split("train")[0], "y": dm.split("train")[1]}
    callback.draw(trainer, model, "now", "")
    assert model.training and not model.network.layers[1].training


@pytest.mark.parametrize("shape", [(3,), (1, 2, 2)])  # three features; a (1, 2, 2) picture of four
def test_neuron_maps_refuses_inputs_that_are_not_2d(make_trainer, shape):
    data = DataLoader(TensorDataset(torch.randn(8, *shape), torch.randint(0, 2, (8,))), batch_size=4)
    model = Classifier(input_shape=shape, network=partial(MLP, hidden_sizes=[4]))
    trainer = make_trainer(max_epochs=1, callbacks=[NeuronMaps(every_n_epochs=1)])
    one = str(shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"NeuronMaps needs 2-D inputs of shape \(batch, 2\).*one input: {one}"):
        trainer.fit(model, data)


def test_neuron_maps_refuses_a_model_without_activation_modules(make_trainer):
    model = Classifier(network=lambda input_shape, num_outputs: nn.Linear(2, num_outputs))
    with pytest.raises(ValueError, match="NeuronMaps found no activation modules .* in Classifier"):
        NeuronMaps().check_before_run(make_trainer(), model)


def test_figures_in_a_seed_ensemble_are_the_first_seeds(tmp_path):
    """An ensemble's figure callbacks draw its first member, as that seed's solo run draws it."""
    figures = [DecisionBoundary(**SLIDER), NeuronMaps(**SLIDER, max_units=4)]
    assert can_ensemble(TOY, figures)
    ensemble = run_ensemble(TOY, tmp_path / "ensemble", [0, 1], figures)
    solo = run_lesson_run(TOY, tmp_path / "solo", 0, [DecisionBoundary(**SLIDER), NeuronMaps(**SLIDER, max_units=4)],
                          version="seed_0")
    for kind in (DecisionBoundary, NeuronMaps):
        mine, theirs = ensemble.results[0].callback(kind), solo.callback(kind)
        assert [h["step"] for h in mine.history] == [h["step"] for h in theirs.history]
        assert len(mine.history) >= 10
    torch.testing.assert_close(ensemble.results[0].callback(DecisionBoundary).last["probs"],
                               solo.callback(DecisionBoundary).last["probs"])
    assert not any(isinstance(c, DecisionBoundary) for c in ensemble.results[1].callbacks)  # seed 1 is not drawn
    assert any(isinstance(c, FirstMemberFigure) for c in ensemble.results[1].callbacks)
    steps = image_steps(ensemble.results[0].log_dir)
    assert len(steps["boundary/train"]) >= 10 and "neurons/network.layers.1" in steps
    no_repeats(steps)


def test_toy2d_points_are_the_training_points(make_trainer, tmp_path):
    dm = Toy2DDataModule(n_samples=60, val_fraction=0.25)
    model = Classifier(network=partial(MLP, hidden_sizes=[4]))
    callback = DecisionBoundary(stage="train", every_n_epochs=1, resolution=8)
    make_trainer(max_epochs=1, logger=TensorBoardLogger(tmp_path), callbacks=[callback]).fit(model, dm)
    x, y = dm.split("train")  # the same 45 points, in the shuffled order the epoch saw them
    mine, theirs = callback.last["x"][:, 0].argsort(), x[:, 0].argsort()
    torch.testing.assert_close(callback.last["x"][mine], x[theirs].float())
    torch.testing.assert_close(callback.last["y"][mine], y[theirs])


class SharedTanh(nn.Module):
    """2 -> 3 -> 3 -> 2 with one nn.Tanh module called after both hidden layers."""

    def __init__(self, input_shape, num_outputs):
        super().__init__()
        self.first, self.second, self.out = nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, num_outputs)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.out(self.act(self.second(self.act(self.first(x)))))


def test_an_activation_module_called_twice_gives_a_layer_per_call():
    model = Classifier(network=SharedTanh)
    points = torch.randn(5, 2)
    layers = NeuronMaps().capture(model, points)
    assert list(layers) == ["network.act", "network.act/call2"]
    with torch.no_grad():
        first = torch.tanh(model.network.first(points))
        torch.testing.assert_close(layers["network.act"], first)
        torch.testing.assert_close(layers["network.act/call2"], torch.tanh(model.network.second(first)))
