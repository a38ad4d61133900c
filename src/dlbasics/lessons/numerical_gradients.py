"""L2.d Numerical gradients: central differences next to the hand and autograd gradients, and their error against
the step h in float32 and float64. Part of the backprop lesson (``backprop_lesson.run`` calls ``run``).

No training: the L2.a net at its two examples, and at each of the lesson's seeds a 2 -> 8 -> 2 tanh MLP with that
seed's initial weights on 16 points drawn from that seed. Everything runs on the CPU: gradcheck and the error
reference are float64, which MPS does not have.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from dlbasics.backprop import EXAMPLES, GRADIENTS, backprop, check_inputs, hand_backprop
from dlbasics.figures import new_figure
from dlbasics.finite_differences import (
    DTYPES,
    Function,
    StepSweep,
    autograd_gradient,
    central_difference,
    gradcheck,
    max_abs_difference,
    module_loss,
    step_sweep,
    unflatten,
)
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import band, caption
from dlbasics.models.components import MLP

NAME = "numerical_gradients"  # each seed's SeedCheck in ctx.by_seed, where the L2.d claims read it
HS = tuple(torch.logspace(-12, -1, 45, dtype=torch.float64).tolist())  # the steps h: quarter decades
H = 1e-6  # the side-by-side tables' step: torch.autograd.gradcheck's default, near float64's best h
HIDDEN, POINTS = 8, 16
MLP_LABEL = f"2 -> {HIDDEN} -> 2 tanh MLP, {POINTS} points"
SIDE_BY_SIDE = f"L2.d finite differences vs hand and autograd (h = {H:g}, float64)"


@dataclass(frozen=True)
class SeedCheck:
    """The numerical checks of one seed's small MLP: the error against h, gradcheck, and the gradients at ``H``."""

    seed: int
    loss: float                     # the loss at the initial weights
    sweep: StepSweep
    gradcheck: bool
    autograd: dict[str, Tensor]     # per parameter, float64
    difference: dict[str, Tensor]   # central differences at H, float64

    def best_h_decades(self) -> float:
        """How many decades float32's best h lies above float64's (> 0: float32's minimum is at a larger h)."""
        return math.log10(self.sweep.best("float32")[0] / self.sweep.best("float64")[0])


def small_mlp(seed: int) -> tuple[MLP, Tensor, Function]:
    """The seed's MLP, and its loss as a function of its flat parameters (``module_loss``): its initial weights and
    its points (normal in 2-D, random labels) both drawn from ``seed``, leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MLP([2], 2, [HIDDEN], activation="tanh")  # tanh: no kink for a step to cross, unlike relu
        x, y = torch.randn(POINTS, 2), torch.randint(0, 2, (POINTS,))  # (16, 2), (16,)
    return net, *module_loss(net, x, y, F.cross_entropy)


def check_seed(seed: int) -> SeedCheck:
    net, theta, f = small_mlp(seed)
    theta = theta.double()
    auto, diff = autograd_gradient(f, theta), central_difference(f, theta, H)
    return SeedCheck(seed, float(f(theta)), step_sweep(f, theta, HS), gradcheck(f, theta), unflatten(net, auto),
                     unflatten(net, diff))


def l2a_function(case: Mapping[str, Any]) -> tuple[Tensor, Function]:
    """The L2.a loss as a function of theta = (W1 row-major, W2), (6,), computed by the hand formulas in the
    dtype of theta (not vectorizable: ``hand_backprop`` checks p with ``.item()``)."""
    x, W1, W2, y = check_inputs(**case)

    def f(theta: Tensor) -> Tensor:
        return hand_backprop(x.to(theta), theta[:4].view(2, 2), theta[4:].view(1, 2), y)["loss"]

    return torch.cat([W1.reshape(-1), W2.reshape(-1)]), f


def l2a_differences(case: Mapping[str, Any]) -> dict[str, Tensor]:
    """dL/dW1 (2, 2) and dL/dW2 (1, 2) of an L2.a case by central differences at ``H``, float64."""
    theta, f = l2a_function(case)
    g = central_difference(f, theta, H, vectorize=False)
    return {"dL/dW1": g[:4].view(2, 2), "dL/dW2": g[4:].view(1, 2)}


def l2a_table(name: str, case: Mapping[str, Any]) -> tuple[str, dict[str, float | str]]:
    """Hand, autograd and finite-difference gradients of an L2.a case, entry by entry, and the report's numbers:
    max |FD - autograd|, max |FD - hand| and whether gradcheck passes."""
    result, fd = backprop(**case, name=name), l2a_differences(case)
    lines = [f"L2.d finite differences (h = {H:g}, float64): {name}",
             f"{'gradient':<12} {'hand':>14} {'autograd':>14} {'finite diff':>14} {'|fd - auto|':>11}",
             f"{'-' * 12} {'-' * 56}"]
    for g in GRADIENTS:
        for index in itertools.product(*map(range, fd[g].shape)):
            hand, auto, num = (t[g][index].item() + 0.0 for t in (result.hand, result.autograd, fd))  # no -0
            lines.append(f"{g + '[' + ','.join(map(str, index)) + ']':<12} {hand:>14.8f} {auto:>14.8f} "
                         f"{num:>14.8f} {abs(num - auto):>11.2e}")
    theta, f = l2a_function(case)
    numbers = {"max_abs_fd_minus_autograd": max_abs_difference(fd, result.autograd),
               "max_abs_fd_minus_hand": max_abs_difference(fd, result.hand),
               "gradcheck": "passes" if gradcheck(f, theta) else "FAILS"}
    return "\n".join(lines), numbers


def best_float64_error(runs: Mapping[str, Any]) -> float:
    """Claim measure: the seed's MLP's smallest float64 max |FD - autograd| over the steps h."""
    return runs[NAME].sweep.best("float64")[1]


def best_h_decades(runs: Mapping[str, Any]) -> float:
    """Claim measure: decades between the seed's float32 and float64 best h (> 0: float32's is larger)."""
    return runs[NAME].best_h_decades()


def _curve(ax: Axes, label: str, curves: np.ndarray, color: str) -> None:
    """The mean over seeds of ``curves`` (seeds, steps) with its band, and its minimum marked and labelled."""
    mean = curves.mean(axis=0)
    ax.plot(HS, mean, color=color, label=label)
    band(ax, np.asarray(HS), curves, color, positive=True)
    j = int(np.argmin(mean))
    ax.plot(HS[j], mean[j], "o", color=color, markersize=7, markeredgecolor="black")
    ax.annotate(f"min at h = {HS[j]:.1e}\nerror {mean[j]:.1e}", (HS[j], mean[j]), xytext=(0, -26),
                textcoords="offset points", ha="center", fontsize=8, color=color,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def sweep_figure(l2a: StepSweep, l2a_loss: float, checks: Sequence[SeedCheck]) -> Figure:
    """Error against h, log-log: the L2.a worked example (left) and the seeds' MLPs (right), float32 and float64,
    with the slopes of truncation (h^2) and rounding (eps |L| / h) as guides."""
    fig = new_figure(11.0, 4.6)
    axes = fig.subplots(1, 2, sharey=True)
    hs = np.asarray(HS)
    panels = {"L2.a net, worked example (one net, no seed)": {d: np.asarray([l2a.errors[d]]) for d in DTYPES},
              f"{MLP_LABEL} (each seed's own)": {d: np.asarray([c.sweep.errors[d] for c in checks]) for d in DTYPES}}
    losses = (l2a_loss, float(np.mean([c.loss for c in checks])))
    for ax, (title, curves), loss in zip(axes, panels.items(), losses):
        for (dtype, values), color in zip(curves.items(), ("tab:orange", "tab:blue")):
            _curve(ax, dtype, values, color)
            eps = torch.finfo(DTYPES[dtype]).eps
            ax.plot(hs, eps * loss / hs, ":", color=color, linewidth=1, label=f"{dtype} rounding eps |L| / h")
        anchor = curves["float64"].mean(axis=0)[-1] / hs[-1] ** 2  # h^2 through float64's error at the largest h
        ax.plot(hs, anchor * hs**2, "--", color="grey", linewidth=1, label="truncation ~ h^2 (slope 2)")
        ax.set(xscale="log", yscale="log", xlabel="step h (log)", title=title, ylim=(1e-13, 1.0))
        ax.grid(alpha=0.3, which="major")
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("max |finite difference - autograd| (absolute)")
    fig.suptitle("L2.d central-difference error against the step h: truncation falls as h^2, rounding rises as 1/h")
    caption(fig, {len(checks)} if len(checks) > 1 else set())
    return fig


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one CPU thread, then as it was: on these tiny tensors more threads only wait for each other (a seed's
    checks took 0.07 s on one thread, 0.2-2 s on two of a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run(ctx: LessonContext, seeds: Sequence[int]) -> None:
    """L2.d at ``seeds`` (the lesson's): tables, the figure, and each seed's ``SeedCheck`` for the claims."""
    with one_thread():
        _run(ctx, seeds)


def _run(ctx: LessonContext, seeds: Sequence[int]) -> None:
    report = ctx.report
    texts = []
    for name, case in EXAMPLES.items():
        text, numbers = l2a_table(name, case)
        texts.append(text)
        report.add(SIDE_BY_SIDE, f"L2.a {name}", **numbers)
    report.text = "\n\n".join([report.text, *texts]).strip()

    checks = [check_seed(seed) for seed in seeds]
    for seed, check in zip(seeds, checks):
        ctx.by_seed.setdefault(seed, {})[NAME] = check
    report.add(SIDE_BY_SIDE, MLP_LABEL, max_abs_fd_minus_autograd=[max_abs_difference(c.difference, c.autograd)
                                                                   for c in checks],
               gradcheck=f"passes at {sum(c.gradcheck for c in checks)} of {len(checks)} seeds")
    for param in checks[0].autograd:
        report.add(f"L2.d {MLP_LABEL}, per parameter (h = {H:g}, float64)", param,
                   max_abs_autograd=[c.autograd[param].abs().max().item() for c in checks],
                   max_abs_fd_minus_autograd=[(c.difference[param] - c.autograd[param]).abs().max().item()
                                              for c in checks])

    theta, f = l2a_function(EXAMPLES["worked"])
    l2a = step_sweep(f, theta, HS, vectorize=False)
    for dtype in DTYPES:
        h, error = l2a.best(dtype)
        report.add("L2.d error against the step h (minimum over h)", f"L2.a worked, {dtype}", best_h=h,
                   min_error=error)
        report.add("L2.d error against the step h (minimum over h)", f"MLP, {dtype}",
                   best_h=[c.sweep.best(dtype)[0] for c in checks], min_error=[c.sweep.best(dtype)[1] for c in checks])
    ctx.figure(sweep_figure(l2a, float(f(theta)), checks), "l2d_finite_difference_error")
    report.add_key(**{"L2.d min float64 |FD - autograd| (MLP)": [best_float64_error({NAME: c}) for c in checks],
                      "L2.d decades from float64's to float32's best h (MLP)": [c.best_h_decades() for c in checks]})
    report.notes.append("L2.d: errors are absolute, max |finite difference - autograd| over every parameter, the "
                        "reference being float64 autograd for both dtypes; gradcheck and the float64 sweep run on "
                        "the CPU (MPS has no float64).")
