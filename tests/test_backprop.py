import json

import pytest
import torch

from dlbasics.backprop import EXAMPLES, STEPS, TOLERANCE, backprop, backprop_cli

# Worked example by hand: x = [1, 2], W1 = [[0.1, -0.2], [0.3, 0.4]], W2 = [[0.7, -0.5]], y = 1.
#   z1 = [1*0.1 + 2*0.3, 1*(-0.2) + 2*0.4] = [0.7, 0.6];  h = relu(z1) = [0.7, 0.6] (both positive)
#   z2 = 0.7*0.7 + 0.6*(-0.5) = 0.49 - 0.30 = 0.19
#   p = 1 / (1 + e^-0.19) = 0.547357618143089...;  loss = -ln p = 0.602652909298613...
#   dL/dp = -1/p = -1.826959133943362...;  dp/dz2 = p(1 - p) = 0.247757256003813...
#   dL/dz2 = p - 1 = g = -0.452642381856911...
#   dL/dW2 = g * h = [[0.7 g, 0.6 g]];  dL/dh = g * W2 = [0.7 g, -0.5 g] = dL/dz1 (relu' = [1, 1])
#   dL/dW1 = outer(x, dL/dz1) = [[0.7 g, -0.5 g], [1.4 g, -1.0 g]]
G = -0.452642381856910727
WORKED = {
    "z1": [0.7, 0.6],
    "h": [0.7, 0.6],
    "z2": 0.19,
    "p": 0.547357618143089273,
    "loss": 0.602652909298613313,
    "dL/dp": -1.82695913394336232,
    "dp/dz2": 0.247757256003813342,
    "dL/dz2": G,
    "dL/dW2": [[0.7 * G, 0.6 * G]],
    "dL/dh": [0.7 * G, -0.5 * G],
    "relu'(z1)": [1.0, 1.0],
    "dL/dz1": [0.7 * G, -0.5 * G],
    "dL/dW1": [[0.7 * G, -0.5 * G], [1.4 * G, -1.0 * G]],
}


def test_worked_example_matches_hand_arithmetic():
    result = backprop(**EXAMPLES["worked"])
    assert list(result.steps) == list(STEPS)
    for name, expected in WORKED.items():
        value = result.steps[name]
        assert value.dtype == torch.float64, name
        torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12,
                                   msg=f"step {name}")


def test_exercise_gates_the_negative_unit():
    # z1 = [2*0.2 + 1*0.5, 2*(-0.3) + 1*0.4] = [0.9, -0.2]: the second unit is off, so it passes no gradient.
    result = backprop(**EXAMPLES["exercise"])
    assert result.steps["z1"].tolist() == pytest.approx([0.9, -0.2], abs=1e-12)
    assert result.steps["relu'(z1)"].tolist() == [1.0, 0.0]
    assert result.steps["dL/dW1"][:, 1].tolist() == [0.0, 0.0]
    assert result.steps["dL/dz2"].item() == pytest.approx(result.steps["p"].item() - 0.0, abs=1e-15)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_presets_hand_equals_autograd(name):
    result = backprop(**EXAMPLES[name], name=name)
    assert result.max_abs_diff < 1e-12  # float64: far inside the lesson's TOLERANCE
    assert result.agrees
    for g in ("dL/dW1", "dL/dW2"):
        assert result.hand[g].shape == result.autograd[g].shape


@pytest.mark.parametrize("seed", range(8))
def test_random_cases_hand_equals_autograd_with_a_gated_unit(seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, generator=generator, dtype=torch.float64)
    W1 = torch.randn(2, 2, generator=generator, dtype=torch.float64)
    W2 = torch.randn(1, 2, generator=generator, dtype=torch.float64)
    y = float(torch.randint(0, 2, (), generator=generator))
    W1[:, 1] *= -torch.sign(x @ W1[:, 1])  # force z1[1] < 0 so the relu gate is exercised
    result = backprop(x, W1, W2, y)
    assert result.steps["z1"][1] < 0 and result.steps["relu'(z1)"][1] == 0
    assert result.max_abs_diff < TOLERANCE
    assert result.steps["dL/dz2"].item() == pytest.approx(result.steps["p"].item() - y, abs=1e-12)


def test_relu_derivative_at_zero_is_zero_like_autograd():
    result = backprop([1.0, 0.0], [[0.0, 0.5], [3.0, 0.2]], [[0.7, -0.5]], 1)  # z1 = [0, 0.5]
    assert result.steps["relu'(z1)"].tolist() == [0.0, 1.0]
    assert result.max_abs_diff < 1e-12


@pytest.mark.parametrize("z2", [-30.0, 28.0, 30.0, 36.0])
def test_confident_predictions_still_agree(z2):
    # F.binary_cross_entropy's backward clamps p (1 - p) at 1e-12 and would be off by ~z2 here.
    result = backprop([1.0, 0.0], [[abs(z2), 0.0], [0.0, 0.0]], [[1.0 if z2 > 0 else -1.0, 0.0]], 0.0)
    assert result.steps["z2"].item() == z2
    assert result.max_abs_diff < TOLERANCE


def test_soft_label_and_flat_or_float32_inputs():
    nested = backprop(**EXAMPLES["worked"])
    flat = backprop(torch.tensor([1.0, 2.0], dtype=torch.float32), [0.1, -0.2, 0.3, 0.4], [0.7, -0.5], 1)
    assert flat.W1.dtype == torch.float64 and flat.W1.tolist() == nested.W1.tolist()
    assert flat.max_abs_diff < 1e-6
    soft = backprop(**{**EXAMPLES["worked"], "y": 0.3})
    assert soft.agrees and soft.steps["dL/dz2"].item() == pytest.approx(soft.steps["p"].item() - 0.3, abs=1e-12)


@pytest.mark.parametrize(("change", "message"), [
    ({"x": [1.0, 2.0, 3.0]}, r"x must be 2 numbers, got 3"),
    ({"x": [1.0, float("nan")]}, r"x has a value that is not finite"),
    ({"x": "ab"}, r"x must be 2 numbers"),
    ({"w1": [0.1, 0.2, 0.3]}, r"w1 must be 4 numbers \(2x2, row-major"),
    ({"w1": [[0.1, 0.2], [0.3]]}, r"w1 must be 4 numbers"),
    ({"w1": [[0.1], [0.2], [0.3], [0.4]]}, r"shaped \(4, 1\)"),
    ({"w2": [[0.7, -0.5, 0.1]]}, r"w2 must be 2 numbers \(1x2\)"),
    ({"y": 2}, r"y = 2 is outside \[0, 1\]"),
    ({"y": "one"}, r"y must be a number in \[0, 1\]"),
    ({"x": [100.0, 100.0], "w1": [[1.0, 0.0], [0.0, 1.0]], "w2": [[1.0, 1.0]]},
     r"p = sigmoid\(z2\) is exactly 1 .*z2 = 200.*smaller weights"),
])
def test_bad_inputs_say_what_to_change(change, message):
    with pytest.raises(ValueError, match=message):
        backprop(**{**EXAMPLES["worked"], **change})


def test_to_dict_is_plain_json():
    result = backprop(**EXAMPLES["worked"], name="worked")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["name"] == "worked"
    assert data["inputs"] == {"x": [1.0, 2.0], "w1": [[0.1, -0.2], [0.3, 0.4]], "w2": [[0.7, -0.5]], "y": 1.0}
    assert list(data["forward"]) == ["z1", "h", "z2", "p", "loss"]
    assert set(data["forward"]) | set(data["factors"]) == set(STEPS)
    assert data["forward"]["p"] == pytest.approx(WORKED["p"], abs=1e-12)
    for g in ("dL/dW1", "dL/dW2"):
        assert data["hand"][g] == data["factors"][g] == [pytest.approx(row, abs=1e-12) for row in WORKED[g]]
        assert data["autograd"][g] == [pytest.approx(row, abs=1e-12) for row in WORKED[g]]
    assert isinstance(data["max_abs_diff"], float) and data["agrees"] is True


def test_table_shows_every_step_and_both_gradients_in_100_columns():
    table = str(backprop(**EXAMPLES["worked"], name="worked"))
    for name, formula in STEPS.items():
        assert any(line.startswith(name) and formula in line for line in table.splitlines()), name
    for entry in ("dL/dW1[0,0]", "dL/dW1[1,1]", "dL/dW2[0,1]"):
        assert entry in table
    assert "hand" in table and "autograd" in table and "|diff|" in table
    assert "0.547358" in table and "[[-0.31685, 0.226321], [-0.633699, 0.452642]]" in table
    assert "max |hand - autograd|" in table and "agree within 1e-06: yes" in table
    assert max(len(line) for line in table.splitlines()) <= 100


def test_cli_without_numbers_prints_both_presets(capsys):
    assert backprop_cli([]) == 0
    out = capsys.readouterr().out
    assert "L2.a backprop by hand: worked" in out and "L2.a backprop by hand: exercise" in out


def test_cli_parses_negative_numbers(capsys):
    argv = ["--x", "1", "2", "--w1", "0.1", "-0.2", "0.3", "0.4", "--w2", "0.7", "-0.5", "--y", "1"]
    assert backprop_cli(argv) == 0
    out = capsys.readouterr().out
    assert "x = [1, 2]   W1 = [[0.1, -0.2], [0.3, 0.4]]   W2 = [[0.7, -0.5]]   y = 1" in out
    assert "0.547358" in out and "exercise" not in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--x", "1", "2", "--w1", "0.1", "-0.2", "0.3", "0.4"], "missing: --w2, --y"),
    (["--y", "1"], "missing: --x, --w1, --w2"),
    (["--x", "1", "2", "3", "--w1", "1", "2", "3", "4", "--w2", "1", "2", "--y", "1"], "x must be 2 numbers"),
    (["--x", "1", "2", "--w1", "1", "2", "3", "4", "--w2", "1", "2", "--y", "5"], "outside [0, 1]"),
    (["--x", "1", "two"], "invalid float value"),
])
def test_cli_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert backprop_cli(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_cli_help_exits_0(capsys):
    assert backprop_cli(["--help"]) == 0
    assert "--w1" in capsys.readouterr().out


def test_cli_writes_json(tmp_path, capsys):
    path = tmp_path / "out" / "backprop.json"
    assert backprop_cli(["--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert list(data) == ["worked", "exercise"]
    assert data["worked"] == json.loads(json.dumps(backprop(**EXAMPLES["worked"], name="worked").to_dict()))
    assert data["exercise"]["forward"]["z1"] == pytest.approx([0.9, -0.2], abs=1e-12)
    assert str(path) in capsys.readouterr().out
