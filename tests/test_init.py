"""The networks' ``init`` schemes: the weights' statistics, constant symmetry, default unchanged, config path, errors."""

import math
from pathlib import Path

import pytest
import torch
from reliability_probes import config_network
from torch import nn

from dlbasics.cli import main
from dlbasics.models.components import MLP, SmallCNN
from dlbasics.models.components.init import initialize

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 256  # 256 x 256 = 65536 weights per hidden layer: their sample std is within ~1% of the true one


def hidden_linears(network: nn.Module) -> list[nn.Linear]:
    return [m for m in network.modules() if isinstance(m, nn.Linear)][1:-1]  # square WIDTH x WIDTH layers


def assert_std(weight: torch.Tensor, std: float) -> None:
    # The sample std of n normal values has a relative standard error of 1 / sqrt(2n); allow 5 of them.
    tolerance = 5 / math.sqrt(2 * weight.numel())
    assert float(weight.std()) == pytest.approx(std, rel=tolerance)
    assert abs(float(weight.mean())) < 5 * std / math.sqrt(weight.numel())


@pytest.mark.parametrize(("init", "activation", "std"), [
    ("normal", "relu", 0.01),
    ("xavier", "tanh", 5 / 3 * math.sqrt(2 / (WIDTH + WIDTH))),
    ("xavier", "sigmoid", math.sqrt(2 / (WIDTH + WIDTH))),
    ("kaiming", "relu", math.sqrt(2 / WIDTH)),
    ("kaiming", "leaky_relu", math.sqrt(2 / (1 + 0.2**2)) / math.sqrt(WIDTH)),
    ("kaiming", "identity", 1 / math.sqrt(WIDTH)),
])
def test_each_scheme_draws_weights_with_the_std_of_its_formula_and_zero_biases(init, activation, std):
    torch.manual_seed(0)
    mlp = MLP((8,), 2, [WIDTH] * 3, activation, init=init, negative_slope=0.2)
    for layer in hidden_linears(mlp):
        assert_std(layer.weight, std)
        assert torch.count_nonzero(layer.bias) == 0


def test_normal_uses_init_std_whatever_the_layer_size():
    torch.manual_seed(0)
    mlp = MLP((WIDTH,), 2, [WIDTH, 64], init="normal", init_std=1.0)
    assert_std(mlp.layers[0].weight, 1.0)
    assert_std(mlp.layers[2].weight, 1.0)


def test_xavier_and_kaiming_use_each_layers_own_fans():
    torch.manual_seed(0)
    first = MLP((WIDTH,), 2, [4 * WIDTH], "relu", init="xavier").layers[0].weight  # fan_in 256, fan_out 1024
    assert_std(first, math.sqrt(2) * math.sqrt(2 / (WIDTH + 4 * WIDTH)))
    first = MLP((WIDTH,), 2, [4 * WIDTH], "relu", init="kaiming").layers[0].weight
    assert_std(first, math.sqrt(2 / WIDTH))


def test_constant_makes_every_unit_of_a_layer_identical_and_training_keeps_them_so():
    torch.manual_seed(0)
    mlp = MLP((2,), 2, [16, 16], "tanh", init="constant", init_value=0.3)
    assert all(torch.all(m.weight == 0.3) and torch.all(m.bias == 0) for m in mlp.modules() if isinstance(m, nn.Linear))
    optimizer = torch.optim.Adam(mlp.parameters(), lr=0.05)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.cross_entropy(mlp(x), y).backward()
        optimizer.step()
    for layer in hidden_linears(mlp) + [mlp.layers[0]]:
        assert not torch.allclose(layer.weight, torch.full_like(layer.weight, 0.3))  # it trained
        assert torch.equal(layer.weight, layer.weight[:1].expand_as(layer.weight))  # every row the same
        assert torch.equal(layer.bias, layer.bias[:1].expand_as(layer.bias))


def test_default_is_pytorchs_own_init_bitwise():
    """``init='default'`` draws no random number: the weights are those of the same Linear layers built alone."""
    torch.manual_seed(0)
    mlp = MLP((2,), 3, [64, 64, 64], "tanh")
    torch.manual_seed(0)
    reference = [nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                 nn.Linear(64, 3)]
    for mine, theirs in zip(mlp.state_dict().values(), nn.Sequential(*reference).state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    # The sums of the parameters at seed 0 of the networks as built before ``init`` existed.
    torch.manual_seed(0)
    assert sum(float(p.detach().double().sum()) for p in MLP((2,), 2, [64] * 3, "tanh").parameters()) == \
        -4.439316271804273
    torch.manual_seed(0)
    assert sum(float(p.detach().double().sum()) for p in SmallCNN((1, 8, 8), 3, [4, 6], [5]).parameters()) == \
        4.973873804876348


def test_the_cnn_initializes_its_conv_and_head_layers():
    torch.manual_seed(0)
    cnn = SmallCNN((1, 8, 8), 3, [WIDTH, WIDTH], [WIDTH], init="kaiming")
    conv = cnn.features[3]  # 256 -> 256 channels, 3x3: fan_in 2304
    assert isinstance(conv, nn.Conv2d)
    assert_std(conv.weight, math.sqrt(2 / (WIDTH * 9)))
    head = cnn.head.layers[0]  # 256 * 2 * 2 -> 256
    assert_std(head.weight, math.sqrt(2 / (WIDTH * 4)))


def network(args: list[str]) -> MLP:
    return config_network("deep_init.yaml", args)


def test_init_reaches_the_network_from_the_command_line_and_from_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's logger would write lightning_logs/ here
    mlp = network(["--model.network.init=normal", "--model.network.init_std=1.0"])
    assert_std(mlp.layers[2].weight, 1.0)
    config = tmp_path / "init.yaml"
    config.write_text("model:\n  init_args:\n    network:\n      init_args:\n        init: constant\n"
                      "        init_value: 0.2\n")
    assert torch.all(network(["--config", str(config)]).layers[2].weight == 0.2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"init": "xaviar"}, "init 'xaviar' is not one of: default, constant, normal, xavier, kaiming"),
    ({"init": "normal", "init_std": -0.1}, "init_std -0.1 must be a finite number >= 0"),
    ({"init": "normal", "init_std": 0.0}, "init_std 0.0 must be > 0"),
    ({"init": "constant", "init_value": float("nan")}, "init_value nan must be a finite number"),
])
def test_bad_init_settings_are_refused_with_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP((2,), 2, [4], **kwargs)
    with pytest.raises(ValueError, match=message):
        SmallCNN((1, 8, 8), 2, [4], [4], **kwargs)


def test_initialize_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="activation 'rleu' is not one of"):
        initialize(nn.Linear(2, 2), "kaiming", "rleu")


def test_a_bad_init_name_from_fit_exits_2_with_one_message_and_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["fit", "--config", str(ROOT / "configs/deep_init.yaml"), "--model.network.init=xaviar"])
    assert status == 2
    assert "init 'xaviar' is not one of: default, constant, normal, xavier, kaiming" in capsys.readouterr().err
    assert not (tmp_path / "lightning_logs").exists()
