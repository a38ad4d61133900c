from functools import partial
from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbasics.callbacks import ConfusionMatrix, DecisionBoundary, FeatureMaps, Misclassified, RegressionFit
from dlbasics.callbacks.figures import fit_figure
from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures._images import as_image
from dlbasics.data import MNISTDataModule, MoonsDataModule, SineDataModule
from dlbasics.models import Classifier, Regressor
from dlbasics.models.components import MLP, SmallCNN


def run_folder(tmp_path) -> tuple[TensorBoardLogger, Path]:
    logger = TensorBoardLogger(tmp_path, name="run", version=0)
    return logger, Path(logger.log_dir)


def image_steps(folder: Path) -> dict[str, list[int]]:
    """TensorBoard image tag -> the global steps it was logged at."""
    events = EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    return {tag: [event.step for event in events.Images(tag)] for tag in events.Tags()["images"]}


def pngs(folder: Path) -> set[str]:
    return {path.name for path in (folder / "figures").glob("*.png")}


def mnist_setup(data_dir: Path, network=partial(MLP, hidden_sizes=[16])) -> tuple[MNISTDataModule, Classifier]:
    """300 val digits, the fake test set, in batches of 128 (a short last batch), an untrained seeded classifier."""
    torch.manual_seed(0)
    dm = MNISTDataModule(data_dir=data_dir, val_size=300, batch_size=50, eval_batch_size=128)
    return dm, Classifier(input_shape=dm.input_shape, num_outputs=10, network=network)


def direct(model: Classifier, dm: MNISTDataModule, split: str) -> tuple[torch.Tensor, ...]:
    """Float inputs, targets, predictions and per-sample losses of a whole split, computed without Lightning."""
    x, y = dm.split(split)
    x = dm.to_float(x)
    with torch.no_grad():
        logits = model.eval()(x)
    return x, y, logits.argmax(1), F.cross_entropy(logits, y, reduction="none")


def highest_loss(loss: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` entries of ``index`` with the highest ``loss``, ties in index order (as the callbacks break them)."""
    return index[torch.sort(-loss[index], stable=True).indices[:k]]


def test_decision_boundary_every_n_epochs_at_the_end_of_fit_and_in_test(make_trainer, tmp_path):
    torch.manual_seed(0)
    dm = MoonsDataModule(n_samples=200, batch_size=32, eval_batch_size=16)  # validates on the 50 test points
    model = Classifier(network=partial(MLP, hidden_sizes=[8]))
    val, test = DecisionBoundary(every_n_epochs=2, resolution=20), DecisionBoundary(stage="test", resolution=20)
    logger, folder = run_folder(tmp_path)
    trainer = make_trainer(max_epochs=3, logger=logger, callbacks=[val, test])
    trainer.fit(model, dm)  # 150 training points in batches of 32: 5 steps per epoch
    trainer.test(model, dm)
    assert pngs(folder) == {"decision_boundary_val_epoch001.png", "decision_boundary_val_final.png",
                            "decision_boundary_test.png"}
    assert image_steps(folder) == {"boundary/val": [10, 15], "boundary/test": [15]}
    x, y = dm.split("test")
    with torch.no_grad():
        probs = model.eval()(x).softmax(1)
    assert [e["n_points"] for e in val.history] == [50, 50]
    assert test.history[0]["accuracy"] == pytest.approx(float((probs.argmax(1) == y).float().mean()))
    last = test.last
    assert last["probs"].shape == (20, 20, 2)
    torch.testing.assert_close(last["probs"].sum(-1), torch.ones(20, 20))
    point = torch.stack([last["grid_x"][3], last["grid_y"][7]])  # probs are indexed [y, x, class]
    torch.testing.assert_close(last["probs"][7, 3], model(point[None]).softmax(1)[0].detach())
    assert last["grid_x"][0] == pytest.approx(float(x[:, 0].min()) - 0.5)


def test_decision_boundary_refuses_inputs_that_are_not_2d(make_trainer):
    data = DataLoader(TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,))), batch_size=4)
    model = Classifier(input_shape=(3,), network=partial(MLP, hidden_sizes=[4]))
    trainer = make_trainer(max_epochs=1, callbacks=[DecisionBoundary(every_n_epochs=1)])
    with pytest.raises(ValueError, match=r"needs 2-D inputs of shape \(batch, 2\).*one input: \(3,\)"):
        trainer.fit(model, data, data)


def test_regression_fit_draws_model_truth_and_points(make_trainer, tmp_path):
    torch.manual_seed(0)
    dm = SineDataModule(n_train=20, n_eval=30, batch_size=8)
    model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8]))
    callback = RegressionFit(every_n_epochs=2, resolution=50)
    logger, folder = run_folder(tmp_path)
    make_trainer(max_epochs=3, logger=logger, callbacks=[callback]).fit(model, dm)  # 3 steps per epoch
    assert pngs(folder) == {"regression_fit_epoch001.png", "regression_fit_final.png"}
    assert image_steps(folder) == {"regression/fit": [6, 9]}
    last = callback.last
    torch.testing.assert_close(last["train_x"].sort().values, dm.split("train")[0].reshape(-1))  # each point once
    torch.testing.assert_close(last["eval_y"], dm.split("val")[1].reshape(-1))
    assert last["grid_x"][0] == -3 and last["grid_x"][-1] == 3 and len(last["grid_x"]) == 50
    torch.testing.assert_close(last["true_y"], torch.sin(last["grid_x"]))  # the datamodule's true function
    with torch.no_grad():
        torch.testing.assert_close(last["pred"], model(last["grid_x"][:, None]).reshape(-1))
        train_mse = F.mse_loss(model(dm.split("train")[0]), dm.split("train")[1])
    assert callback.history[-1]["train_mse"] == pytest.approx(float(train_mse), rel=1e-5)
    overlay = fit_figure(last, "runs", curves={"a": last["pred"], "b": last["pred"] + 1})  # several runs' fits
    assert [line.get_label() for line in overlay.axes[0].lines] == ["true function", "a", "b"]


@pytest.mark.parametrize("make_callback", [lambda: DecisionBoundary(every_n_epochs=4, resolution=10),
                                           lambda: RegressionFit(every_n_epochs=4, resolution=10)])
def test_figure_callbacks_gather_points_only_in_the_epochs_that_need_them(make_trainer, monkeypatch, make_callback):
    gathered_in = []
    gather = Collector.gather

    def recording(self, trainer):
        gathered_in.append(trainer.current_epoch)
        return gather(self, trainer)
    monkeypatch.setattr(Collector, "gather", recording)
    callback = make_callback()
    torch.manual_seed(0)
    if isinstance(callback, DecisionBoundary):
        dm, model = MoonsDataModule(n_samples=200, batch_size=64), Classifier(network=partial(MLP, hidden_sizes=[8]))
    else:
        dm = SineDataModule(n_train=20, n_eval=30, batch_size=8)
        model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8]))
    make_trainer(max_epochs=7, callbacks=[callback]).fit(model, dm)
    # The first epoch (a fallback for the final figure), the due epoch 3, the last epoch 6 for the final figure;
    # RegressionFit gathers its train and its val points in each.
    per_epoch = 1 if isinstance(callback, DecisionBoundary) else 2
    assert gathered_in == [e for e in (0, 3, 6) for _ in range(per_epoch)]
    assert [h["epoch"] for h in callback.history] == [3, 7]  # the end-of-training figure: after epoch 6
    if isinstance(callback, DecisionBoundary):  # every figure shows the whole split
        assert [h["n_points"] for h in callback.history] == [50, 50]
    else:
        torch.testing.assert_close(callback.last["train_x"].sort().values, dm.split("train")[0].reshape(-1))


def test_regression_fit_takes_its_truth_as_an_import_path_in_yaml():
    parser = ArgumentParser()
    parser.add_argument("--callback", type=RegressionFit)
    config = parser.parse_args(["--callback", "{class_path: dlbasics.callbacks.RegressionFit, "
                                              "init_args: {true_function: torch.sin}}"])
    assert parser.instantiate(config).callback.true_function is torch.sin


def test_regression_fit_named_truth_and_wrong_inputs(make_trainer, tmp_path):
    dm = SineDataModule(n_train=10, n_eval=10)  # target sin, but the callback is told otherwise
    callback = RegressionFit(every_n_epochs=1, true_function=lambda x: torch.sin(x) + 0.5 * x, resolution=5)
    make_trainer(max_epochs=1, callbacks=[callback]).fit(Regressor((1,), 1, network=partial(MLP, hidden_sizes=[4])), dm)
    grid = callback.last["grid_x"]
    torch.testing.assert_close(callback.last["true_y"], torch.sin(grid) + 0.5 * grid)
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    with pytest.raises(ValueError, match=r"1-D regression: inputs of shape \(batch,\) or \(batch, 1\), got \(4, 2\)"):
        wide = Regressor((2,), 1, network=partial(MLP, hidden_sizes=[4]))
        make_trainer(max_epochs=1, callbacks=[RegressionFit()]).fit(wide, data)


def test_confusion_matrix_counts_every_sample_once(make_trainer, tmp_path, fake_mnist):
    dm, model = mnist_setup(fake_mnist)
    counts, fractions = ConfusionMatrix(), ConfusionMatrix(normalize="true", class_names=list("abcdefghij"))
    during_fit = ConfusionMatrix(stage="val")
    logger, folder = run_folder(tmp_path)
    trainer = make_trainer(max_epochs=1, limit_train_batches=2, logger=logger,
                           callbacks=[counts, fractions, during_fit])
    trainer.fit(model, dm)
    trainer.test(model, dm)
    _, y, pred, _ = direct(model, dm, "test")
    expected = torch.zeros(10, 10, dtype=torch.int64).index_put_((y, pred), torch.tensor(1), accumulate=True)
    assert torch.equal(counts.matrix, expected) and counts.matrix.sum() == len(y)
    present = expected.sum(1) > 0  # classes with samples: their row of fractions sums to 1
    assert fractions.normalized.sum(1)[present].tolist() == pytest.approx([1.0] * int(present.sum()))
    assert during_fit.matrix.sum() == 300 and during_fit.history[0]["epoch"] == 0  # the val split, no sanity batches
    assert pngs(folder) == {"confusion_matrix_test.png", "confusion_matrix_test_normalized_true.png",
                            "confusion_matrix_val_epoch000.png"}
    assert set(image_steps(folder)) == {"confusion/test", "confusion/test_normalized_true", "confusion/val"}
    with pytest.raises(ValueError, match="class_names lists 2 names but the model outputs 10 class scores"):
        make_trainer(callbacks=[ConfusionMatrix(class_names=["a", "b"])]).test(model, dm)


def test_misclassified_picks_are_wrong_first_or_by_highest_loss(make_trainer, tmp_path, fake_mnist):
    dm, model = mnist_setup(fake_mnist)
    first, worst = Misclassified(n_wrong=8, n_right=4), Misclassified(n_wrong=5, order="highest_loss")
    logger, folder = run_folder(tmp_path)
    make_trainer(logger=logger, callbacks=[first, worst]).test(model, dm)
    x, y, pred, loss = direct(model, dm, "test")
    wrong, right = (pred != y).nonzero()[:, 0], (pred == y).nonzero()[:, 0]
    picks = first.picks
    assert (picks["wrong"]["pred"] != picks["wrong"]["target"]).all()
    assert picks["wrong"]["position"].tolist() == wrong[:8].tolist()
    assert picks["right"]["position"].tolist() == right[:4].tolist()
    torch.testing.assert_close(picks["wrong"]["x"], x[wrong[:8]])  # the inputs as the model saw them
    assert torch.equal(picks["wrong"]["pred"], pred[wrong[:8]])
    top = highest_loss(loss, wrong, 5)
    assert worst.picks["wrong"]["position"].tolist() == top.tolist()
    torch.testing.assert_close(worst.picks["wrong"]["loss"], loss[top])
    assert first.history == [{"epoch": 0, "step": 0, "stage": "test", "n_wrong": len(wrong), "n_samples": len(y)}]
    assert pngs(folder) == {"misclassified_test.png", "misclassified_test_highest_loss.png"}
    assert set(image_steps(folder)) == {"misclassified/test", "misclassified/test_highest_loss"}


def test_inputs_are_drawn_as_min_max_scaled_pictures():
    flat = torch.arange(784.0) - 100
    picture = as_image(flat, (28, 28))
    assert picture.shape == (28, 28) and picture.min() == 0 and picture.max() == 1
    assert as_image(torch.randn(1, 28, 28)).shape == (28, 28)
    assert as_image(torch.randn(3, 8, 8)).shape == (8, 8, 3)
    assert as_image(torch.randn(2)) is None  # a 2-D point is drawn as bars
    with pytest.raises(ValueError, match=r"image_shape \(28, 27\) holds 756 values but an input of shape \(784,\)"):
        as_image(flat, (28, 27))


def test_feature_maps_of_the_first_conv_for_fixed_inputs(make_trainer, tmp_path, fake_mnist):
    dm, model = mnist_setup(fake_mnist, network=partial(SmallCNN, channels=[4, 8]))
    callback = FeatureMaps(n_inputs=3, max_maps=2)
    logger, folder = run_folder(tmp_path)
    trainer = make_trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=2, logger=logger,
                           callbacks=[callback])
    trainer.fit(model, dm)
    trainer.test(model, dm)
    conv = model.network.features[0]
    assert callback.layer_name == "network.features.0" and not conv._forward_hooks  # hook removed after capture
    x_val, *_ = direct(model, dm, "val")
    torch.testing.assert_close(callback.inputs, x_val[:3])  # the first val inputs, kept for the test run too
    with torch.no_grad():
        torch.testing.assert_close(callback.maps, conv(x_val[:3]))  # all 4 channels kept, 2 drawn
    assert pngs(folder) == {f"feature_maps_network.features.0_{s}.png" for s in ("epoch000", "epoch001", "test")}
    assert image_steps(folder) == {"feature_maps/network.features.0": [2, 4],  # the test image under its own tag
                                   "feature_maps/test/network.features.0": [4]}


def test_feature_maps_layer_errors_list_the_conv_layers(make_trainer, fake_mnist):
    dm, cnn = mnist_setup(fake_mnist, network=partial(SmallCNN, channels=[4, 8]))
    wrong = r"layer 'network.conv1' is not a module of Classifier; its conv layers are: network.features.0, network.f"
    with pytest.raises(ValueError, match=wrong):
        make_trainer(callbacks=[FeatureMaps(layer="network.conv1")]).test(cnn, dm)
    with pytest.raises(ValueError, match=wrong):  # the CLI's pre-run hook says the same
        FeatureMaps(layer="network.conv1").check_before_run(make_trainer(), cnn)
    with pytest.raises(ValueError, match="found no nn.Conv2d in Classifier; name the layer"):
        make_trainer(callbacks=[FeatureMaps()]).test(mnist_setup(fake_mnist)[1], dm)


@pytest.mark.parametrize("make, message", [
    (lambda: DecisionBoundary(every_n_epochs=0), "every_n_epochs 0 must be an integer >= 1"),
    (lambda: DecisionBoundary(stage="predict"), "stage 'predict' is not one of: train, val, test"),
    (lambda: DecisionBoundary(padding=-1.0), "padding -1.0 must be a finite number >= 0"),
    (lambda: DecisionBoundary(resolution=1), "resolution 1 must be an integer >= 2"),
    (lambda: RegressionFit(true_function="cos"), "true_function 'cos' must be a function of x such as torch.sin"),
    (lambda: ConfusionMatrix(normalize="rows"), "normalize 'rows' is not one of: none, true, pred, all"),
    (lambda: ConfusionMatrix(stage="train"), "stage 'train' is not one of: val, test"),
    (lambda: Misclassified(n_wrong=0), "n_wrong and n_right are both 0"),
    (lambda: Misclassified(order="random"), "order 'random' is not one of: first, highest_loss"),
    (lambda: Misclassified(image_shape=(28, 0)), r"image_shape must be positive integers, got \[28, 0\]"),
    (lambda: FeatureMaps(max_maps=0), "max_maps 0 must be an integer >= 1"),
])  # fmt: skip
def test_bad_arguments_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_feature_maps_figure_is_one_mosaic_with_each_map_on_its_own_scale():
    from matplotlib import colormaps

    from dlbasics.callbacks.figures.feature_maps import maps_figure

    inputs = torch.rand(2, 1, 6, 6)
    maps = torch.stack([torch.full((3, 4, 4), 5.0), torch.arange(48.0).reshape(3, 4, 4) * 100]).float()
    fig = maps_figure(inputs, maps, max_maps=2, title="t")
    (ax,) = fig.axes
    mosaic = ax.get_images()[0].get_array()
    gap = 1
    assert mosaic.shape == (2 * (4 + gap) - gap, 3 * (4 + gap) - gap, 3)  # 2 rows; input column + 2 channels
    low, high = (colormaps["viridis"](v)[:3] for v in (0.0, 1.0))
    # A constant map is all "low", not NaN; a ramp spans the colour map whatever its scale (x100 here).
    tile = mosaic[0:4, 5:9]
    assert torch.allclose(torch.tensor(tile), torch.tensor(low, dtype=torch.float64).expand(4, 4, 3))
    ramp = mosaic[5:9, 5:9]
    assert torch.allclose(torch.tensor(ramp[0, 0]), torch.tensor(low, dtype=torch.float64))
    assert torch.allclose(torch.tensor(ramp[3, 3]), torch.tensor(high, dtype=torch.float64))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["input", "ch 0", "ch 1"]
