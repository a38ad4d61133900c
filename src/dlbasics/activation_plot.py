"""Lesson L1.a: the registry's activations and their derivatives, the derivatives computed by autograd."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor

from dlbasics.activations import check_activation, make_activation
from dlbasics.checks import check_int, check_number
from dlbasics.figures import new_figure

LESSON_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


Curve = tuple[Tensor, Tensor, Tensor]  # z, f(z), f'(z), each (points,)


def activation_curves(names: Sequence[str] | None = None, negative_slope: float = 0.1,
                      z_range: tuple[float, float] = (-5.0, 5.0), points: int = 401) -> dict[str, Curve]:
    """``{name: (z, f(z), f'(z))}``, each (points,), with f' from autograd on the registry's module.

    Args:
        names: registry names; None: sigmoid, tanh, relu, leaky_relu (lesson L1.a).
        negative_slope: slope of ``leaky_relu`` below 0 (0.1 makes it visible in a plot; 0.01 is the usual).
        z_range: ``(low, high)`` of the evenly spaced inputs.
        points: number of inputs; odd counts include z = 0 on a symmetric range.
    """
    names = list(LESSON_ACTIVATIONS if names is None else names)
    if not names:
        raise ValueError("names is empty; give registry names such as ['sigmoid', 'relu'] or None for the lesson's")
    for name in names:
        check_activation(name, "names entry")
    low, high = (float(v) for v in z_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"z_range {tuple(z_range)!r} must be two finite numbers (low, high) with low < high")
    check_number(negative_slope, "negative_slope")
    check_int(points, "points", minimum=2)
    curves = {}
    for name in names:
        # Float64 steps, so an odd count on a symmetric range hits z = 0 exactly (float32 linspace misses it).
        z = (low + (high - low) * torch.arange(points, dtype=torch.float64) / (points - 1)).float().requires_grad_()
        f = make_activation(name, negative_slope)(z)
        # Elementwise f, so d(sum f)/dz_i = f'(z_i): the whole derivative curve in one backward pass.
        (df,) = torch.autograd.grad(f.sum(), z)
        curves[name] = (z.detach(), f.detach(), df)
    return curves


def activation_functions_figure(names: Sequence[str] | None = None, negative_slope: float = 0.1,
                                z_range: tuple[float, float] = (-5.0, 5.0)) -> Figure:
    """One panel per activation: f(z) solid and its autograd derivative f'(z) dashed.

    Args:
        names: registry names; None: sigmoid, tanh, relu, leaky_relu (lesson L1.a).
        negative_slope: slope of ``leaky_relu`` below 0.
        z_range: ``(low, high)`` of the plotted inputs.
    """
    curves = activation_curves(names, negative_slope, z_range)
    columns = min(4, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig = new_figure(3.2 * columns, 2.9 * rows + 0.4)
    fig.suptitle("Activation functions and their derivatives (autograd)")
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True)
    for ax in axes.flat[len(curves):]:
        ax.set_axis_off()
    for ax, (name, (z, f, df)) in zip(axes.flat, curves.items()):
        ax.plot(z, f, color="tab:blue", linewidth=2, label="f(z)")
        ax.plot(z, df, color="tab:orange", linewidth=2, linestyle="--", label="f'(z)")
        ax.axhline(0, color="k", linewidth=0.5)
        ax.axvline(0, color="k", linewidth=0.5)
        ax.set_title(f"{name} (slope {negative_slope:g})" if name == "leaky_relu" else name, fontsize=10)
        ax.set_xlabel("z")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return fig
