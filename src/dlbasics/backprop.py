"""Backprop by hand (lesson L2.a): every chain-rule factor of a tiny net, checked against autograd.

The net has no biases and sees one example:
    z1 = x @ W1,  h = relu(z1),  z2 = h @ W2^T,  p = sigmoid(z2),  loss = BCE(p, y)
with x (2,), W1 (2, 2), W2 (1, 2). ``hand_backprop`` writes each step out as a formula, ``autograd_backprop``
lets torch differentiate the same net built from library ops, and ``backprop`` puts both in a table.

Everything is float64: this is arithmetic for teaching, and in float64 the two routes agree to ~1e-16, so
any real mistake stands out far above rounding (the lesson's bar, TOLERANCE, is 1e-6).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

TOLERANCE = 1e-6  # hand and autograd gradients must agree this closely ("to float precision")

# The lesson's two cases, as a learner would type them.
EXAMPLES: dict[str, dict] = {
    "worked": {"x": [1.0, 2.0], "w1": [[0.1, -0.2], [0.3, 0.4]], "w2": [[0.7, -0.5]], "y": 1.0},
    "exercise": {"x": [2.0, 1.0], "w1": [[0.2, -0.3], [0.5, 0.4]], "w2": [[0.6, -0.7]], "y": 0.0},
}

# Every step in the order the lesson takes it: name -> formula. Forward values first, then chain-rule factors.
STEPS: dict[str, str] = {
    "z1": "x @ W1",
    "h": "relu(z1)",
    "z2": "h @ W2^T",
    "p": "sigmoid(z2) = 1 / (1 + exp(-z2))",
    "loss": "-(y log p + (1 - y) log(1 - p))",
    "dL/dp": "-y / p + (1 - y) / (1 - p)",
    "dp/dz2": "p (1 - p)",
    "dL/dz2": "dL/dp * dp/dz2  (= p - y)",
    "dL/dW2": "dL/dz2 * h",
    "dL/dh": "dL/dz2 * W2",
    "relu'(z1)": "1 if z1 > 0 else 0  (0 at z1 = 0)",
    "dL/dz1": "dL/dh * relu'(z1)",
    "dL/dW1": "outer(x, dL/dz1)",
}
FORWARD = ("z1", "h", "z2", "p", "loss")
GRADIENTS = ("dL/dW1", "dL/dW2")


def _as_tensor(name: str, values, shape: tuple[int, ...], layout: str) -> Tensor:
    """``values`` as a float64 tensor of ``shape``, from a flat (row-major) or a nested list of numbers."""
    try:
        t = torch.as_tensor(values, dtype=torch.float64).detach()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be {layout}, got {values!r}") from err
    n = math.prod(shape)
    if tuple(t.shape) not in (shape, (n,)):
        raise ValueError(f"{name} must be {layout}, got {t.numel()} number(s) shaped {tuple(t.shape)}: {values!r}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has a value that is not finite: {t.tolist()}")
    return t.reshape(shape)


def check_inputs(x, w1, w2, y) -> tuple[Tensor, Tensor, Tensor, float]:
    """Validate one case and return ``x`` (2,), ``W1`` (2, 2), ``W2`` (1, 2) as float64 tensors and ``y``.

    ``y`` may be a soft label anywhere in [0, 1]: binary cross-entropy is defined there, not only at 0 and 1.
    """
    x = _as_tensor("x", x, (2,), "2 numbers")
    W1 = _as_tensor("w1", w1, (2, 2), "4 numbers (2x2, row-major: w11 w12 w21 w22)")
    W2 = _as_tensor("w2", w2, (1, 2), "2 numbers (1x2)")
    try:
        label = float(y)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"y must be a number in [0, 1], got {y!r}") from err
    if not 0.0 <= label <= 1.0:
        raise ValueError(f"y = {y!r} is outside [0, 1]; use a label 0 or 1, or a soft label in between")
    return x, W1, W2, label


def hand_backprop(x: Tensor, W1: Tensor, W2: Tensor, y: float) -> dict[str, Tensor]:
    """Every forward value and chain-rule factor by explicit formula (no autograd), keyed as in ``STEPS``."""
    z1 = x @ W1                                   # (2,) @ (2, 2) -> (2,)
    h = z1.clamp(min=0.0)                         # relu, (2,)
    z2 = (h @ W2.T).squeeze(0)                    # (2,) @ (2, 1) -> (1,) -> ()
    p = 1.0 / (1.0 + torch.exp(-z2))              # ()
    if p.item() in (0.0, 1.0):                    # log(0) below, and dL/dp would be 0/0
        raise ValueError(f"p = sigmoid(z2) is exactly {p.item():g} in float64 (z2 = {z2.item():.6g}), so the "
                         "loss is log(0); use smaller weights or inputs so that |z2| stays below about 36")
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    dL_dp = -y / p + (1 - y) / (1 - p)            # ()
    dp_dz2 = p * (1 - p)                          # ()
    dL_dz2 = dL_dp * dp_dz2                       # (), equals p - y
    dL_dW2 = dL_dz2 * h.unsqueeze(0)              # () * (1, 2) -> (1, 2), shaped like W2
    dL_dh = dL_dz2 * W2.squeeze(0)                # (2,)
    relu_grad = (z1 > 0).to(z1.dtype)             # (2,); 0 at z1 = 0, the convention torch's relu uses too
    dL_dz1 = dL_dh * relu_grad                    # (2,)
    dL_dW1 = torch.outer(x, dL_dz1)               # (2,) x (2,) -> (2, 2), shaped like W1
    values = [z1, h, z2, p, loss, dL_dp, dp_dz2, dL_dz2, dL_dW2, dL_dh, relu_grad, dL_dz1, dL_dW1]
    return dict(zip(STEPS, values))


def autograd_backprop(x: Tensor, W1: Tensor, W2: Tensor, y: float) -> dict[str, Tensor]:
    """dL/dW1 (2, 2) and dL/dW2 (1, 2) from ``torch.autograd.grad`` on the same net built from torch's ops.

    The loss is the explicit log form, not ``F.binary_cross_entropy``: that one's backward divides by
    max(p (1 - p), 1e-12), so once |z2| > ~27.6 its gradient drifts from the true p - y.
    """
    W1 = W1.detach().requires_grad_()
    W2 = W2.detach().requires_grad_()
    p = torch.sigmoid(F.relu(x @ W1) @ W2.T).squeeze(0)  # (2,) -> (1,) -> ()
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    dW1, dW2 = torch.autograd.grad(loss, (W1, W2))
    return {"dL/dW1": dW1, "dL/dW2": dW2}


def _fmt(value, digits: int = 6) -> str:
    """A tensor, list or number rounded to ``digits`` significant digits (``-0`` shown as ``0``)."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v, digits) for v in value) + "]"
    return f"{value + 0.0:.{digits}g}"


@dataclass(frozen=True)
class BackpropResult:
    """One case of L2.a: its inputs, every step (forward values and factors) and both routes' gradients."""

    name: str
    x: Tensor          # (2,)
    W1: Tensor         # (2, 2)
    W2: Tensor         # (1, 2)
    y: float
    steps: dict[str, Tensor]     # keyed as in STEPS; includes the hand gradients dL/dW1, dL/dW2
    autograd: dict[str, Tensor]  # dL/dW1, dL/dW2
    max_abs_diff: float          # over every entry of dL/dW1 and dL/dW2

    @property
    def hand(self) -> dict[str, Tensor]:
        return {g: self.steps[g] for g in GRADIENTS}

    @property
    def agrees(self) -> bool:
        return self.max_abs_diff <= TOLERANCE

    def to_dict(self) -> dict:
        """Plain numbers and lists, ready for ``json.dumps``."""
        def as_lists(tensors: dict[str, Tensor]) -> dict:
            return {k: v.tolist() for k, v in tensors.items()}

        return {
            "name": self.name,
            "inputs": {"x": self.x.tolist(), "w1": self.W1.tolist(), "w2": self.W2.tolist(), "y": self.y},
            "forward": as_lists({k: v for k, v in self.steps.items() if k in FORWARD}),
            "factors": as_lists({k: v for k, v in self.steps.items() if k not in FORWARD}),
            "hand": as_lists(self.hand),
            "autograd": as_lists(self.autograd),
            "max_abs_diff": self.max_abs_diff,
            "agrees": self.agrees,
        }

    def format_table(self) -> str:
        """Step-by-step table (name, formula, value), then the gradients side by side; fits 100 columns."""
        lines = [f"L2.a backprop by hand: {self.name}",
                 f"x = {_fmt(self.x)}   W1 = {_fmt(self.W1)}   W2 = {_fmt(self.W2)}   y = {_fmt(self.y)}", "",
                 f"{'step':<10} {'formula':<36} value", f"{'-' * 10} {'-' * 36} {'-' * 30}"]
        lines += [f"{name:<10} {formula:<36} {_fmt(self.steps[name])}" for name, formula in STEPS.items()]
        lines += ["", f"{'gradient':<12} {'hand':>14} {'autograd':>14} {'|diff|':>10}", f"{'-' * 12} {'-' * 40}"]
        for g in GRADIENTS:
            hand, auto = self.steps[g], self.autograd[g]
            for index in itertools.product(*map(range, hand.shape)):  # every entry, row-major
                h, a = hand[index].item(), auto[index].item()
                where = ",".join(map(str, index))
                lines.append(f"{g + '[' + where + ']':<12} {_fmt(h):>14} {_fmt(a):>14} {_fmt(abs(h - a), 3):>10}")
        verdict = "yes" if self.agrees else "NO"
        lines += ["", f"max |hand - autograd| = {_fmt(self.max_abs_diff, 3)}  (agree within {TOLERANCE:g}: {verdict})"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def backprop(x, w1, w2, y, name: str = "custom") -> BackpropResult:
    """Run one case both ways.

    Args:
        x: 2 numbers, the input row vector.
        w1: 4 numbers, W1 as a 2x2 nested list or flat row-major (w11 w12 w21 w22); z1 = x @ W1.
        w2: 2 numbers, W2 as [[a, b]] or [a, b]; z2 = h @ W2^T.
        y: the label, 0 or 1 (a soft label in [0, 1] is accepted too).
        name: a title for the table.
    """
    x, W1, W2, y = check_inputs(x, w1, w2, y)
    steps = hand_backprop(x, W1, W2, y)
    auto = autograd_backprop(x, W1, W2, y)
    diff = max((steps[g] - auto[g]).abs().max().item() for g in GRADIENTS)
    return BackpropResult(name, x, W1, W2, y, steps, auto, diff)


DESCRIPTION = ("Lesson L2.a: backprop through z1 = x W1, h = relu(z1), z2 = h W2^T, p = sigmoid(z2), BCE loss, "
               "by hand and by autograd. With no numbers, shows the worked example and the exercise.")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The by-hand computation's own numbers: ``--x X0 X1 --w1 A B C D --w2 E F --y Y`` and ``--json PATH``."""
    parser.add_argument("--x", type=float, nargs="+", metavar="X", help="2 numbers: the input")
    parser.add_argument("--w1", type=float, nargs="+", metavar="W", help="4 numbers: W1 row-major (w11 w12 w21 w22)")
    parser.add_argument("--w2", type=float, nargs="+", metavar="W", help="2 numbers: W2 (1x2)")
    parser.add_argument("--y", type=float, metavar="Y", help="label in [0, 1] (0 or 1 in the lesson)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the by-hand results as JSON here")


def by_hand(args: argparse.Namespace, parser: argparse.ArgumentParser, presets: bool = True) -> int | None:
    """Print the table for the numbers in ``args`` (or, with ``presets``, for both presets when none are given).

    Returns the exit status, or None when no numbers were given and ``presets`` is False. Bad numbers end in
    ``parser.error`` (exit status 2, as argparse does).
    """
    numbers = {"--x": args.x, "--w1": args.w1, "--w2": args.w2, "--y": args.y}
    missing = [flag for flag, value in numbers.items() if value is None]
    if 0 < len(missing) < len(numbers):
        parser.error(f"--x, --w1, --w2 and --y go together; missing: {', '.join(missing)}")
    if missing and not presets:
        return None
    try:
        if missing:
            results = [backprop(**case, name=name) for name, case in EXAMPLES.items()]
        else:
            results = [backprop(args.x, args.w1, args.w2, args.y)]
    except ValueError as err:
        parser.error(str(err))
    print("\n\n".join(r.format_table() for r in results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({r.name: r.to_dict() for r in results}, indent=2) + "\n")
        print(f"\nWrote {args.json}")
    return 0


def backprop_cli(argv: list[str] | None = None) -> int:
    """``python -m dlbasics.backprop``: print the table for both presets, or for the numbers given.

    Returns the exit status: 0, or 2 with a message on stderr for bad input (as argparse does).
    """
    parser = argparse.ArgumentParser(prog="python -m dlbasics.backprop", description=DESCRIPTION)
    add_arguments(parser)
    try:
        return by_hand(parser.parse_args(argv), parser)
    except SystemExit as exit_:  # argparse exits on --help and on errors; hand back the status instead
        return exit_.code if isinstance(exit_.code, int) else 2


if __name__ == "__main__":
    sys.exit(backprop_cli())
