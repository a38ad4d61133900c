from functools import partial

import lightning as L
import pytest
import torch

from dlbasics.data import MoonsDataModule, SineDataModule, Toy2DDataModule
from dlbasics.data.splits import split_sizes, stratified_split
from dlbasics.models.components import MLP

SMALL = [MoonsDataModule(n_samples=200, val_fraction=0.1), Toy2DDataModule(val_fraction=0.3, test_fraction=0.1),
         SineDataModule(n_train=20, n_eval=50)]


@pytest.mark.parametrize("dm", SMALL, ids=lambda dm: type(dm).__name__)
def test_splits_are_float32_inputs_with_task_targets(dm):
    dm.setup()
    for name, (x, y) in dm.splits.items():
        assert x.dtype == torch.float32, name
        assert x.shape[1:] == dm.input_shape
        assert y.dtype == (torch.float32 if dm.task == "regression" else torch.int64)
        assert len(x) == len(y)


@pytest.mark.parametrize("cls", [MoonsDataModule, Toy2DDataModule, SineDataModule])
def test_same_seed_same_data_other_seed_other_data(cls):
    def train(seed):
        x, y = cls(seed=seed).split("train")
        return torch.cat([x.flatten(), y.float().flatten()])
    assert torch.equal(train(1), train(1))
    assert not torch.equal(train(1), train(2))


def test_same_seed_same_first_batches():
    batches = [next(iter(MoonsDataModule(seed=5).train_dataloader())) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*batches))


def test_moons_defaults_and_stratified_split():
    dm = MoonsDataModule()
    dm.setup()
    sizes = {k: len(v[1]) for k, v in dm.splits.items()}
    assert sizes == {"train": 1500, "val": 0, "test": 500}
    for _, y in (dm.splits["train"], dm.splits["test"]):
        assert y.float().mean().item() == pytest.approx(0.5)


def test_moons_matches_scikit_learn():
    from sklearn.datasets import make_moons
    x, y = make_moons(n_samples=100, noise=0.1, random_state=7)
    dm = MoonsDataModule(n_samples=100, noise=0.1, test_fraction=0.2, seed=7)
    got = torch.cat([dm.split(s)[0] for s in ("train", "val", "test")])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, torch.from_numpy(x).float().tolist()))


def test_stratified_split_keeps_class_shares_and_is_disjoint():
    labels = torch.tensor([0] * 80 + [1] * 20)
    train, val, test = stratified_split(labels, 0.25, 0.25, seed=0)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(100))
    for part in (train, val, test):
        assert labels[part].float().mean().item() == pytest.approx(0.2)


@pytest.mark.parametrize("boundary,rule", [("linear", lambda x: x[:, 0] + x[:, 1] > 0),
                                           ("quadratic", lambda x: x[:, 0] ** 2 + 0.8 * x[:, 1] > 0.5)])
def test_toy2d_labels_follow_the_boundary(boundary, rule):
    x, y = Toy2DDataModule(boundary=boundary, n_samples=300).split("train")
    assert torch.equal(y, rule(x).long())
    assert abs(x.mean().item()) < 0.2 and abs(x.std().item() - 1) < 0.1


def test_toy2d_split_is_ordered_first_share_trains():
    dm = Toy2DDataModule(boundary="quadratic", n_samples=200, val_fraction=0.3)
    full = Toy2DDataModule(boundary="quadratic", n_samples=200).split("train")[0]
    assert torch.equal(dm.split("train")[0], full[:140]) and torch.equal(dm.split("val")[0], full[140:])


def test_sine_train_grid_targets_and_noiseless_eval():
    dm = SineDataModule(target="sin_plus_linear", n_train=20, noise_std=0.2, n_eval=100, eval_noise_std=0.0)
    x, y = dm.split("train")
    assert torch.allclose(x.squeeze(1), torch.linspace(-3, 3, 20))
    residual = y - (torch.sin(x) + 0.5 * x)
    assert 0.1 < residual.std().item() < 0.3
    tx, ty = dm.split("test")
    assert tx.shape == (100, 1) and torch.allclose(ty, torch.sin(tx) + 0.5 * tx)


def test_sine_noisy_eval_draws_val_and_test_independently():
    dm = SineDataModule(eval_noise_std=0.2)
    assert not torch.equal(dm.split("val")[1], dm.split("test")[1])


def test_full_batch_is_one_batch_of_the_whole_split():
    dm = Toy2DDataModule(n_samples=100, batch_size="full")
    (batch,) = list(dm.train_dataloader())
    assert batch[0].shape == (100, 2)


def test_validation_falls_back_to_test_then_to_none():
    moons = MoonsDataModule(n_samples=100)
    assert len(next(iter(moons.val_dataloader()))[1]) == 25  # the test split
    assert Toy2DDataModule().val_dataloader() == []
    with pytest.raises(ValueError, match="no test split; set test_fraction"):
        Toy2DDataModule().test_dataloader()


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size 0 must be a positive integer or 'full'"),
    (dict(batch_size="all"), "batch_size 'all' must be"),
    (dict(val_fraction=0.5, test_fraction=0.5), "leaves nothing to train on"),
    (dict(test_fraction=-0.1), r"test_fraction -0.1 must be in \[0, 1\)"),
    (dict(n_samples=10, val_fraction=0.01), "the val split of 10 samples is empty"),
    (dict(noise=-1.0), "noise -1.0 must be a finite number >= 0"),
    (dict(noise=float("nan")), "noise nan must be a finite number >= 0"),  # nan < 0 is False: checked as such
    (dict(n_samples=True), "n_samples True must be an integer >= 2"),
])
def test_moons_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MoonsDataModule(**kwargs).setup()


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="boundary 'circle' is not one of: linear, quadratic"):
        Toy2DDataModule(boundary="circle")
    with pytest.raises(ValueError, match="target 'cos' is not one of"):
        SineDataModule(target="cos")
    with pytest.raises(ValueError, match="noise_std -0.1 must be a finite number >= 0"):
        SineDataModule(noise_std=-0.1)
    assert split_sizes(10, 0.2, 0.1) == (7, 2, 1)


class RecordFirstBatch(L.Callback):
    def __init__(self):
        self.first = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.first[trainer.current_epoch] = batch[1].clone()


def test_lightning_sets_the_epoch_so_each_epoch_has_its_own_order(make_trainer):
    from dlbasics.models import Classifier
    dm = MoonsDataModule(n_samples=200, batch_size=16, seed=3)
    recorder = RecordFirstBatch()
    model = Classifier(network=partial(MLP, hidden_sizes=[4]))
    make_trainer(max_epochs=3, callbacks=[recorder], limit_val_batches=0).fit(model, dm)
    for epoch, first in recorder.first.items():
        sampler = dm.train_dataloader().sampler
        sampler.set_epoch(epoch)
        assert torch.equal(first, dm.split("train")[1][next(iter(sampler))])
    assert not torch.equal(recorder.first[0], recorder.first[1])
