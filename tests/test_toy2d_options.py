"""Toy2DDataModule options: label_noise (a seeded share of the training labels flipped, the other splits clean)
and input_scale (the features stretched, the labels kept)."""

import pytest
import torch

from dlbasics.data import Toy2DDataModule


def _splits(**kwargs):
    dm = Toy2DDataModule(boundary="quadratic", n_samples=200, val_fraction=0.3, seed=3, **kwargs)
    return {name: dm.split(name) for name in ("train", "val")}


def test_flips_that_share_of_training_labels_only():
    clean, noisy = _splits(), _splits(label_noise=0.2)
    for name in ("train", "val"):
        assert torch.equal(clean[name][0], noisy[name][0])  # same points
    assert int((clean["train"][1] != noisy["train"][1]).sum()) == round(0.2 * 140)
    assert torch.equal(clean["val"][1], noisy["val"][1])  # validation labels stay clean


def test_flips_depend_on_the_seed_and_repeat():
    first, again = _splits(label_noise=0.1), _splits(label_noise=0.1)
    assert torch.equal(first["train"][1], again["train"][1])
    other = Toy2DDataModule(boundary="quadratic", n_samples=200, val_fraction=0.3, seed=4, label_noise=0.1)
    clean_other = Toy2DDataModule(boundary="quadratic", n_samples=200, val_fraction=0.3, seed=4)
    flipped_here = (_splits()["train"][1] != first["train"][1]).nonzero().flatten()
    flipped_other = (clean_other.split("train")[1] != other.split("train")[1]).nonzero().flatten()
    assert not torch.equal(flipped_here, flipped_other)


def test_zero_noise_is_the_default():
    assert torch.equal(_splits()["train"][1], _splits(label_noise=0.0)["train"][1])


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_refuses_values_outside_zero_one(value):
    with pytest.raises(ValueError, match=rf"label_noise {value!r}"):
        Toy2DDataModule(label_noise=value)


def test_input_scale_stretches_the_features_and_keeps_the_labels():
    plain, stretched = _splits(), _splits(input_scale=[100, 1])
    for name in ("train", "val"):
        assert torch.allclose(stretched[name][0], plain[name][0] * torch.tensor([100.0, 1.0]))
        assert torch.equal(stretched[name][1], plain[name][1])


@pytest.mark.parametrize("scale,message", [([100], "one factor per input feature"), ([0, 1], "erases its feature"),
                                           ([-1, 1], "must be a finite number >= 0")])
def test_a_bad_input_scale_is_refused(scale, message):
    from dlbasics.data import Toy2DDataModule

    with pytest.raises(ValueError, match=message):
        Toy2DDataModule(input_scale=scale)
