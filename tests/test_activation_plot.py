import pytest
import torch

from dlbasics.activation_plot import activation_curves, activation_functions_figure


def test_autograd_derivatives_match_the_known_formulas():
    curves = activation_curves(negative_slope=0.1)
    assert list(curves) == ["sigmoid", "tanh", "relu", "leaky_relu"]
    z, s, ds = curves["sigmoid"]
    assert z[0] == -5 and z[-1] == 5 and (z == 0).any() and len(z) == 401
    torch.testing.assert_close(s, torch.sigmoid(z))
    torch.testing.assert_close(ds, s * (1 - s))
    _, t, dt = curves["tanh"]
    torch.testing.assert_close(dt, 1 - t**2)
    _, r, dr = curves["relu"]
    torch.testing.assert_close(r, z.clamp(min=0))
    torch.testing.assert_close(dr, (z > 0).float())  # autograd takes 0 at z = 0
    _, lr, dlr = curves["leaky_relu"]
    torch.testing.assert_close(lr, torch.where(z > 0, z, 0.1 * z))
    torch.testing.assert_close(dlr, torch.where(z > 0, 1.0, 0.1))


def test_other_registry_activations_and_ranges():
    (z, f, df), = activation_curves(["silu"], z_range=(-2, 3), points=11).values()
    assert z[0] == -2 and z[-1] == 3 and len(z) == 11
    s = torch.sigmoid(z)
    torch.testing.assert_close(f, z * s)
    torch.testing.assert_close(df, s * (1 + z * (1 - s)))


def test_figure_draws_each_curve_and_its_derivative():
    fig = activation_functions_figure(negative_slope=0.1)
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in axes] == ["sigmoid", "tanh", "relu", "leaky_relu (slope 0.1)"]
    curves = activation_curves(negative_slope=0.1)
    for ax, (z, f, df) in zip(axes, curves.values()):
        assert ax.lines[0].get_ydata() == pytest.approx(f.numpy())
        assert ax.lines[1].get_ydata() == pytest.approx(df.numpy())
    assert len(activation_functions_figure(["relu", "gelu", "elu", "silu", "tanh"]).axes) == 8  # 2 rows of 4


@pytest.mark.parametrize("kwargs, message", [
    ({"names": ["rleu"]}, "names entry 'rleu' is not one of: sigmoid, tanh"),
    ({"names": []}, "names is empty"),
    ({"z_range": (5, -5)}, "z_range (5, -5) must be two finite numbers"),
    ({"negative_slope": float("nan")}, "negative_slope nan must be a finite number"),
])  # fmt: skip
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        activation_functions_figure(**kwargs)
