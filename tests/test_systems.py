from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from dlbasics.data import MoonsDataModule, SineDataModule
from dlbasics.models import Classifier, Regressor
from dlbasics.models.components import MLP, SmallCNN


def test_same_seed_same_initial_weights():
    def weights(seed):
        L.seed_everything(seed)
        return torch.cat([p.flatten() for p in Classifier(network=partial(MLP, hidden_sizes=[8])).parameters()])
    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


def test_classifier_metrics_cover_the_whole_split_across_batches(make_trainer):
    L.seed_everything(0)
    dm = MoonsDataModule(n_samples=300, batch_size=32, eval_batch_size=7)  # 75 test points: uneven batches
    model = Classifier(network=partial(MLP, hidden_sizes=[16]))
    (result,) = make_trainer().test(model, dm, verbose=False)
    x, y = dm.split("test")
    with torch.no_grad():
        logits = model(x)
    assert result["test/acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item(), abs=1e-6)
    expected_loss = torch.nn.functional.cross_entropy(logits, y).item()
    assert result["test/loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_regressor_metrics_match_direct_computation(make_trainer):
    L.seed_everything(0)
    dm = SineDataModule(n_eval=50, eval_noise_std=0.1, eval_batch_size=8)
    model = Regressor(input_shape=(1,), num_outputs=1, network=partial(MLP, hidden_sizes=[8], activation="tanh"))
    (result,) = make_trainer().test(model, dm, verbose=False)
    x, y = dm.split("test")
    with torch.no_grad():
        pred = model(x)
    mse = ((pred - y) ** 2).mean().item()
    r2 = 1 - ((pred - y) ** 2).sum().item() / ((y - y.mean()) ** 2).sum().item()
    assert result["test/loss"] == pytest.approx(mse, rel=1e-5)  # the loss is the MSE; no duplicate metric
    assert result["test/r2"] == pytest.approx(r2, rel=1e-4, abs=1e-5)
    assert set(result) == {"test/loss", "test/r2"}


def test_regressor_with_two_outputs_logs_scalars(make_trainer):
    L.seed_everything(0)
    x = torch.randn(64, 3)
    y = torch.stack([x.sum(1), x[:, 0] - x[:, 1]], dim=1)
    model = Regressor(input_shape=(3,), num_outputs=2, network=partial(MLP, hidden_sizes=[8]))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    (result,) = make_trainer().test(model, loader, verbose=False)
    with torch.no_grad():
        pred = model(x)
    assert result["test/loss"] == pytest.approx(((pred - y) ** 2).mean().item(), rel=1e-5)
    r2 = 1 - ((pred - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    assert result["test/r2"] == pytest.approx(r2.mean().item(), rel=1e-4, abs=1e-5)


def test_training_learns_moons(make_trainer):
    L.seed_everything(0)
    model = Classifier(optimizer=partial(torch.optim.Adam, lr=0.01), network=partial(MLP, hidden_sizes=[32, 32]))
    trainer = make_trainer(max_epochs=8)
    trainer.fit(model, MoonsDataModule(n_samples=1000))
    assert trainer.callback_metrics["val/acc"] > 0.9
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(trainer.callback_metrics)


def test_injected_optimizer_and_scheduler_are_used():
    model = Classifier(optimizer=partial(torch.optim.AdamW, lr=0.02, weight_decay=0.5),
                       lr_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=3))
    config = model.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 0.02 and optimizer.defaults["weight_decay"] == 0.5
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    plateau = Classifier(lr_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau).configure_optimizers()
    assert plateau["lr_scheduler"]["monitor"] == "val/loss"


def test_checkpoint_is_weights_only_safe_and_restores_predictions(make_trainer, tmp_path):
    L.seed_everything(0)
    dm = MoonsDataModule(n_samples=200)
    network = partial(MLP, hidden_sizes=[8], batch_norm=True, dropout=0.2, activation="leaky_relu", negative_slope=0.2)
    model = Classifier(optimizer=partial(torch.optim.SGD, lr=0.1), network=network)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    make_trainer(max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint]).fit(model, dm)
    path = checkpoint.last_model_path
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    saved = torch.load(path, weights_only=True)
    assert saved["hyper_parameters"]["network"]["init_args"]["activation"] == "leaky_relu"
    restored = Classifier.load_from_checkpoint(path).eval()
    x = dm.split("test")[0]
    with torch.no_grad():
        assert torch.equal(restored(x), model.eval()(x))


@pytest.mark.parametrize("kwargs,match", [
    (dict(activation="rleu"), "activation 'rleu' is not one of"),
    (dict(dropout=1.0), r"dropout 1.0 must be in \[0, 1\)"),
    (dict(hidden_sizes=[0]), "hidden_sizes must be positive integers"),
])
def test_bad_network_settings_fail_when_the_system_is_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Classifier(network=partial(MLP, **kwargs))


class Bilinear(torch.nn.Module):
    """A network written elsewhere: the systems take any module class with (input_shape, num_outputs) first."""

    def __init__(self, input_shape, num_outputs, rank: int = 2):
        super().__init__()
        self.left, self.right = torch.nn.Linear(input_shape[0], rank), torch.nn.Linear(input_shape[0], rank)
        self.out = torch.nn.Linear(rank, num_outputs)

    def forward(self, x):
        return self.out(self.left(x) * self.right(x))


def test_any_network_class_plugs_in_and_its_checkpoint_rebuilds_it(make_trainer, tmp_path):
    L.seed_everything(0)
    model = Classifier(network=partial(Bilinear, rank=3))
    assert model.network.out.in_features == 3
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    make_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint]).fit(model, MoonsDataModule(100))
    saved = torch.load(checkpoint.last_model_path, weights_only=True)["hyper_parameters"]
    assert saved["network"] == {"class_path": f"{__name__}.Bilinear", "init_args": {"rank": 3}}
    restored = Classifier.load_from_checkpoint(checkpoint.last_model_path)
    assert isinstance(restored.network, Bilinear) and restored.network.out.in_features == 3


def test_a_network_from_a_lambda_is_not_saved_and_must_be_given_again_to_load(make_trainer, tmp_path):
    model = Classifier(network=lambda shape, outputs: MLP(shape, outputs, [5]))
    assert "network" not in model.hparams
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    make_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint]).fit(model, MoonsDataModule(100))
    restored = Classifier.load_from_checkpoint(checkpoint.last_model_path, network=partial(MLP, hidden_sizes=[5]))
    assert torch.equal(restored.network.layers[0].weight, model.network.layers[0].weight)


def test_predict_returns_probabilities(make_trainer):
    dm = MoonsDataModule(n_samples=100)
    batches = make_trainer().predict(Classifier(network=partial(MLP, hidden_sizes=[4])), dm)
    probs = torch.cat(batches)
    assert probs.shape == (25, 2)
    assert torch.allclose(probs.sum(1), torch.ones(25))


def test_channels_last_cnn_is_the_same_network_in_another_memory_format(make_trainer, tmp_path, fake_mnist):
    def cnn(channels_last: bool) -> Classifier:
        L.seed_everything(0)
        network = partial(SmallCNN, channels=[4, 8], hidden_sizes=[16], channels_last=channels_last)
        return Classifier(input_shape=(1, 28, 28), num_outputs=10, network=network)
    plain, fast = cnn(False), cnn(True)
    conv = fast.network.features[3].weight  # the second conv: with 1 input channel both formats coincide
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), fast.state_dict().values()))
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(x), plain.eval()(x))  # equal to float rounding

    from dlbasics.data import MNISTDataModule
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    dm = MNISTDataModule(data_dir=fake_mnist, val_size=100, batch_size=64)
    trainer = make_trainer(max_epochs=1, limit_train_batches=5, limit_val_batches=1, enable_checkpointing=True,
                           callbacks=[checkpoint])
    trainer.fit(fast, dm)
    assert fast.network.features[3].weight.is_contiguous(memory_format=torch.channels_last)  # kept while training
    restored = Classifier.load_from_checkpoint(checkpoint.last_model_path)
    assert restored.hparams.network["init_args"]["channels_last"]
    assert restored.network.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(restored.eval()(x), fast.eval()(x))
