import pytest
import torch
from torch import nn

from dlbasics.models.components import MLP, SmallCNN


def layer_types(module: nn.Module) -> list[type]:
    return [type(m) for m in module.layers]


def test_mlp_layers_in_order():
    mlp = MLP((2,), 3, [8, 4], activation="tanh", dropout=0.5, batch_norm=True)
    assert layer_types(mlp) == [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout,
                                nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout, nn.Linear]
    assert [m.out_features for m in mlp.layers if isinstance(m, nn.Linear)] == [8, 4, 3]


def test_mlp_flattens_inputs_and_keeps_float32():
    mlp = MLP((1, 28, 28), 10, [128])
    out = mlp(torch.zeros(5, 1, 28, 28))
    assert out.shape == (5, 10) and out.dtype == torch.float32


def test_mlp_without_hidden_layers_is_linear():
    assert layer_types(MLP((3,), 1, [])) == [nn.Linear]


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_mlp_rejects_dropout_outside_unit_interval(dropout):
    with pytest.raises(ValueError, match=r"dropout .* must be in \[0, 1\)"):
        MLP((2,), 2, [4], dropout=dropout)


@pytest.mark.parametrize("sizes", [[0], [4, -1], [2.5]])
def test_mlp_rejects_non_positive_hidden_sizes(sizes):
    with pytest.raises(ValueError, match="hidden_sizes must be positive integers"):
        MLP((2,), 2, sizes)


def test_mlp_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation 'nope' is not one of"):
        MLP((2,), 2, [4], activation="nope")


def test_small_cnn_is_the_lesson_network():
    cnn = SmallCNN((1, 28, 28), 10, dropout=0.2)
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    linears = [m for m in cnn.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(3136, 128), (128, 10)]
    assert sum(isinstance(m, nn.Dropout) for m in cnn.modules()) == 1
    assert cnn(torch.zeros(4, 1, 28, 28)).shape == (4, 10)


def test_small_cnn_rejects_flat_or_tiny_inputs():
    with pytest.raises(ValueError, match="needs input_shape"):
        SmallCNN((784,), 10)
    with pytest.raises(ValueError, match="too small"):
        SmallCNN((1, 3, 3), 10)


@pytest.mark.parametrize("shape,outputs,match", [((0,), 2, "input_shape must be positive"),
                                                 ((2,), 0, "num_outputs must be positive")])
def test_mlp_rejects_bad_shapes(shape, outputs, match):
    with pytest.raises(ValueError, match=match):
        MLP(shape, outputs)
