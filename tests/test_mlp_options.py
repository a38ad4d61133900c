"""MLP's layer_norm and residual options: structure, the skip arithmetic, refusals, and reaching them from configs."""


import pytest
import torch
from reliability_probes import config_network
from torch import nn

from dlbasics.activations import activation_name
from dlbasics.models.components import MLP
from dlbasics.models.components.mlp import Residual

DEEP = [32] * 6  # the L2.c net: 6 hidden layers of 32 on 2 inputs


def test_default_options_keep_the_flat_parameter_names_of_every_checkpoint():
    names = [name for name, _ in MLP((2,), 2, [8, 8], activation="tanh").named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                     "layers.4.weight", "layers.4.bias"]
    with_bn = [name for name, _ in MLP((2,), 2, [8], batch_norm=True, dropout=0.1).named_parameters()]
    assert with_bn == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                       "layers.4.weight", "layers.4.bias"]


@pytest.mark.parametrize("options", [{}, {"batch_norm": True}, {"layer_norm": True}, {"residual": True},
                                     {"layer_norm": True, "residual": True, "dropout": 0.2}])
def test_every_option_maps_a_batch_to_one_output_per_class(options):
    out = MLP((1, 4, 4), 3, [16, 16], activation="sigmoid", **options)(torch.randn(5, 1, 4, 4))
    assert out.shape == (5, 3) and out.dtype == torch.float32


def test_layer_norm_sits_between_each_hidden_linear_and_its_activation():
    mlp = MLP((2,), 3, [8, 4], activation="tanh", layer_norm=True)
    assert [type(m) for m in mlp.layers] == [nn.Linear, nn.LayerNorm, nn.Tanh, nn.Linear, nn.LayerNorm, nn.Tanh,
                                             nn.Linear]
    assert [m.normalized_shape for m in mlp.modules() if isinstance(m, nn.LayerNorm)] == [(8,), (4,)]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in mlp.modules())


def test_batch_norm_and_layer_norm_together_are_refused():
    with pytest.raises(ValueError, match="batch_norm=True and layer_norm=True.*set one of them to false"):
        MLP((2,), 2, [4], batch_norm=True, layer_norm=True)


def test_residual_skips_every_block_that_keeps_its_width_and_no_other():
    mlp = MLP((2,), 2, DEEP, activation="sigmoid", residual=True)
    blocks = list(mlp.layers)
    assert isinstance(blocks[0], nn.Sequential) and not isinstance(blocks[0], Residual)  # 2 -> 32: no skip
    assert all(isinstance(block, Residual) for block in blocks[1:6])  # blocks 2-6: 32 -> 32
    assert isinstance(blocks[6], nn.Linear) and blocks[6].out_features == 2  # the output layer
    mixed = MLP((4,), 2, [4, 8, 8, 3], residual=True)
    assert [isinstance(block, Residual) for block in mixed.layers] == [True, False, True, False, False]


def test_a_residual_block_computes_x_plus_its_block_of_x():
    torch.manual_seed(0)
    mlp = MLP((2,), 2, [32, 32, 32], activation="sigmoid", residual=True, layer_norm=True)
    x = torch.randn(7, 2)
    first, second, third, head = mlp.layers
    linear, norm, act = second.block
    h1 = first(x)
    h2 = h1 + act(norm(linear(h1)))  # by hand: x + sigmoid(LayerNorm(W x + b))
    h3 = h2 + third.block(h2)
    torch.testing.assert_close(mlp(x), head(h3))
    torch.testing.assert_close(second(h1), h2)


def test_activations_stay_separate_modules_that_named_modules_finds():
    mlp = MLP((2,), 2, DEEP, activation="sigmoid", residual=True, batch_norm=True)
    found = [(name, module) for name, module in mlp.named_modules() if activation_name(module) == "sigmoid"]
    assert [name for name, _ in found] == ["layers.0.2"] + [f"layers.{i}.block.2" for i in range(1, 6)]
    assert len({id(module) for _, module in found}) == 6


def test_an_activation_inside_a_residual_block_can_be_swapped_by_its_name():
    from dlbasics.callbacks.diagnostics._replace_module import replace_module

    mlp = MLP((2,), 2, [8, 8], activation="sigmoid", residual=True)
    replace_module(mlp, "layers.1.block.1", nn.ReLU())
    x = torch.randn(4, 2)
    h = mlp.layers[0](x)
    torch.testing.assert_close(mlp.layers[1](h), h + torch.relu(mlp.layers[1].block[0](h)))


@pytest.mark.parametrize("sizes,inputs,blocks", [([64, 32], 2, "2 -> 64, 64 -> 32"), ([], 3, "none"),
                                                 ([8], 4, "4 -> 8")])
def test_residual_without_a_block_that_keeps_its_width_is_refused(sizes, inputs, blocks):
    with pytest.raises(ValueError, match=f"residual=True, but no hidden block keeps its width.*{blocks}.*"
                                         r"Repeat a width"):
        MLP((inputs,), 2, sizes, residual=True)


def network(args: list[str]) -> MLP:
    return config_network("deep_sigmoid.yaml", args)


def test_the_options_reach_the_network_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's logger would write lightning_logs/ here
    mlp = network(["--model.network.residual=true", "--model.network.layer_norm=true"])
    assert sum(isinstance(m, Residual) for m in mlp.modules()) == 5
    assert sum(isinstance(m, nn.LayerNorm) for m in mlp.modules()) == 6
    plain = network([])
    assert not any(isinstance(m, (Residual, nn.LayerNorm)) for m in plain.modules())


def test_the_options_reach_the_network_from_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "options.yaml"
    config.write_text("model:\n  init_args:\n    network:\n      init_args:\n        residual: true\n"
                      "        batch_norm: true\n")
    mlp = network(["--config", str(config)])
    assert sum(isinstance(m, Residual) for m in mlp.modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm1d) for m in mlp.modules()) == 6
