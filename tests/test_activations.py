import pytest
import torch
from torch import nn

from dlbasics.activations import ACTIVATIONS, activation_name, check_activation, make_activation


def test_registry_names_build_modules_of_their_kind():
    expected = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
                "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU, "identity": nn.Identity}
    assert set(ACTIVATIONS) == set(expected)
    for name, cls in expected.items():
        module = make_activation(name)
        assert type(module) is cls
        assert activation_name(module) == name


def test_each_call_builds_a_fresh_instance():
    assert make_activation("relu") is not make_activation("relu")


def test_leaky_relu_slope_is_configurable():
    out = make_activation("leaky_relu", negative_slope=0.1)(torch.tensor([-2.0, 3.0]))
    assert torch.allclose(out, torch.tensor([-0.2, 3.0]))
    assert make_activation("leaky_relu").negative_slope == 0.01


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"activation 'rleu' is not one of: sigmoid, tanh, relu, leaky_relu"):
        make_activation("rleu")
    with pytest.raises(ValueError, match="swap target 'x'"):
        check_activation("x", where="swap target")


def test_non_registry_module_has_no_name():
    assert activation_name(nn.Linear(2, 2)) is None
