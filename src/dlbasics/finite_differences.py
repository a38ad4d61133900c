"""Numerical gradients (lesson L2.d): central finite differences, the error against the step h, and gradcheck.

For a scalar function f of a tensor x, the central difference of entry i is
    g_i = (f(x + h e_i) - f(x - h e_i)) / (2 h),
two evaluations of f per entry. Its error has two parts: truncation, h^2 f''' / 6 (falls as h^2), and rounding,
about eps |f| / h (rises as 1/h, eps the dtype's machine epsilon). Their sum is smallest near h ~ eps^(1/3):
about 6e-6 in float64 (eps 2.2e-16), about 5e-3 in float32 (eps 1.2e-7), so float32's best h is larger and its
best error far larger. ``step_sweep`` measures that U shape.

Any ``nn.Module`` becomes such a function of one flat parameter vector with ``module_loss``, so the same code checks
a hand-computed net, an MLP or your own module. A step that crosses a kink (relu at 0) breaks the truncation
estimate: the lesson's MLP uses tanh so that only the two errors above remain.

``central_difference`` runs where its tensor is, in its dtype (float32 or float64). ``step_sweep`` (whose reference
is autograd in float64) and ``gradcheck`` (float64 only) run on ``device``, the CPU by default: MPS has no float64,
so they refuse device="mps" with an error that says to use the CPU.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from dlbasics.checks import check_choice, check_number

Function = Callable[[Tensor], Tensor]  # a flat parameter tensor -> a scalar (a loss), in the tensor's dtype
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_step(h: float, name: str = "h") -> float:
    """``h`` as a float if it is a finite number > 0, else a ValueError: a central difference needs a real step."""
    step = check_number(h, name)
    if step <= 0:
        raise ValueError(f"{name} {h!r} must be a finite number > 0: the step of the finite difference "
                         "(f(x + h) - f(x - h)) / (2 h)")
    return step


def check_steps(hs: Sequence[float]) -> list[float]:
    """``hs`` as a list of floats if it is a non-empty sequence of steps > 0, else a ValueError."""
    if isinstance(hs, Tensor):
        hs = hs.tolist()
    if isinstance(hs, (str, bytes)) or not isinstance(hs, Sequence) or not hs:
        raise ValueError(f"hs {hs!r} must be a non-empty list of steps h > 0, e.g. "
                         "torch.logspace(-12, -1, 45).tolist()")
    return [check_step(h, f"hs[{j}]") for j, h in enumerate(hs)]


def check_dtype(dtype: torch.dtype | str, name: str = "dtype") -> torch.dtype:
    """``dtype`` (``torch.float64`` or ``"float64"``) if it is float32 or float64, else a ValueError listing them.

    Half precision is refused: its eps (~1e-3) leaves no step h where a difference quotient means anything.
    """
    key = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    return DTYPES[check_choice(key, name, list(DTYPES))]


def check_device(device: torch.device | str, dtype: torch.dtype = torch.float64) -> torch.device:
    """``device`` as a ``torch.device``; a ValueError for float64 on MPS, which has no float64."""
    device = torch.device(device)
    if device.type == "mps" and dtype == torch.float64:
        raise ValueError(f"device {str(device)!r} cannot run float64 (MPS has no float64), and gradcheck and the "
                         "error reference need it: use device='cpu' (the default)")
    return device


def _value(fn: Function, x: Tensor) -> Tensor:
    out = fn(x)
    if not isinstance(out, Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the function must return a single number (a loss), got {shape}")
    return out.reshape(())


def central_difference(fn: Function, x: Tensor, h: float, vectorize: bool = True) -> Tensor:
    """dfn/dx by central differences, every entry of ``x`` moved by +h and -h, in ``x``'s dtype; shaped like ``x``.

    Args:
        fn: scalar function of a tensor, computing in that tensor's dtype.
        x: where to differentiate: a float32 or float64 tensor.
        h: the step, > 0.
        vectorize: evaluate fn on all the moved points at once with ``torch.func.vmap`` (fast; fn must then avoid
            ``.item()`` and branches on values); False calls fn once per point.
    """
    return central_differences(fn, x, [check_step(h)], vectorize)[0]


def central_differences(fn: Function, x: Tensor, hs: Sequence[float], vectorize: bool = True) -> Tensor:
    """``central_difference`` at each step of ``hs`` (each > 0), all in one batch where memory allows:
    ``(len(hs), *x.shape)``."""
    hs = check_steps(hs)
    check_dtype(x.dtype, "x.dtype")
    flat = x.detach().reshape(-1)                                        # (n,)
    n = flat.numel()
    steps = torch.tensor(hs, dtype=x.dtype, device=x.device)            # (H,)
    block = max(1, min(n, 2**22 // (2 * len(hs) * n)))                  # entries per batch: ~4M numbers at most
    grad = torch.empty(len(hs), n, dtype=x.dtype, device=x.device)
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=x.device)
        b = rows.numel()
        shift = torch.zeros(len(hs), b, n, dtype=x.dtype, device=x.device)
        shift[:, torch.arange(b), rows] = steps[:, None]                # (H, b, n): step h on entry rows[j]
        moved = torch.cat([flat + shift, flat - shift], dim=1)          # (H, 2b, n): b points up, then b down
        values = _values(fn, moved.view(-1, *x.shape), vectorize).view(len(hs), 2 * b)
        grad[:, rows] = (values[:, :b] - values[:, b:]) / (2 * steps[:, None])
    return grad.view(len(hs), *x.shape)


def _values(fn: Function, points: Tensor, vectorize: bool) -> Tensor:
    """fn at each of ``points`` (m, *shape): (m,)."""
    if not vectorize:
        return torch.stack([_value(fn, p) for p in points])
    try:
        return torch.func.vmap(lambda p: _value(fn, p))(points)
    except RuntimeError as err:
        raise ValueError(f"the function cannot be vectorized with torch.func.vmap ({err}); pass vectorize=False "
                         "to evaluate it one point at a time") from err


def autograd_gradient(fn: Function, x: Tensor) -> Tensor:
    """dfn/dx from ``torch.autograd.grad``, shaped like ``x``."""
    x = x.detach().requires_grad_()
    (grad,) = torch.autograd.grad(_value(fn, x), x)
    return grad


@dataclass(frozen=True)
class StepSweep:
    """The central difference's error against the step h, per dtype.

    ``errors[dtype][j]`` is max |finite difference - autograd| over every entry of x at ``hs[j]``: the absolute
    error, like L2.a's hand-vs-autograd check. Absolute, not relative: rounding error is about eps |f| / h, set by
    the size of the loss and not by that of each gradient entry, and a relative error would divide by entries
    that can be 0. The reference is autograd in float64 for every dtype, so a float32 curve is the error of the
    float32 difference alone, not also of float32 autograd.
    """

    hs: tuple[float, ...]
    errors: dict[str, tuple[float, ...]]  # dtype name ("float32") -> error at each h

    def best(self, dtype: str) -> tuple[float, float]:
        """``(h, error)`` where ``dtype``'s error is smallest."""
        errors = self.errors[check_choice(dtype, "dtype", list(self.errors))]
        j = min(range(len(errors)), key=lambda i: errors[i] if math.isfinite(errors[i]) else math.inf)
        return self.hs[j], errors[j]


def step_sweep(fn: Function, x: Tensor, hs: Sequence[float], dtypes: Sequence[torch.dtype | str] = tuple(DTYPES),
               device: torch.device | str = "cpu", vectorize: bool = True) -> StepSweep:
    """max |central difference - autograd| of ``fn`` at ``x`` for each step in ``hs``, in each dtype.

    Args:
        fn: scalar function of a tensor, computing in that tensor's dtype (``module_loss`` makes one of a module).
        x: where to differentiate; cast to each dtype (the reference: float64 autograd).
        hs: the steps, each > 0, e.g. ``torch.logspace(-12, -1, 45).tolist()``.
        dtypes: the dtypes to difference in: float32 and/or float64.
        device: where to compute; float64 rules out MPS.
        vectorize: see ``central_difference``.
    """
    hs = check_steps(hs)
    names = [str(check_dtype(d, "dtypes entry")).removeprefix("torch.") for d in dtypes]
    device = check_device(device)
    reference = autograd_gradient(fn, x.detach().to(device, torch.float64))
    errors = {}
    for name in names:
        at = x.detach().to(device, DTYPES[name])
        diffs = (central_differences(fn, at, hs, vectorize).double() - reference).abs()  # (H, *x.shape)
        errors[name] = tuple(diffs.reshape(len(hs), -1).amax(dim=1).tolist())
    return StepSweep(tuple(hs), errors)


def gradcheck(fn: Function, x: Tensor, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              device: torch.device | str = "cpu") -> bool:
    """``torch.autograd.gradcheck`` of ``fn`` at ``x`` in float64: True when autograd's gradient matches central
    differences with step ``eps`` within ``atol + rtol * |numerical|`` (torch's defaults), else False.

    Args:
        fn: function of a tensor whose backward is checked (any output shape: gradcheck compares Jacobians).
        x: where to check; cast to float64 on ``device``.
        eps: the finite-difference step, > 0.
        atol: absolute tolerance.
        rtol: relative tolerance.
        device: where to check; never MPS (no float64): the CPU by default.
    """
    at = x.detach().to(check_device(device), torch.float64).requires_grad_()
    return torch.autograd.gradcheck(fn, (at,), eps=check_step(eps, "eps"), atol=check_number(atol, "atol", 0),
                                    rtol=check_number(rtol, "rtol", 0), raise_exception=False)


def module_loss(module: nn.Module, inputs: Tensor, targets: Tensor,
                criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Function]:
    """``module``'s loss as a function of one flat parameter vector: ``(theta, f)`` with f(theta) =
    ``criterion(module(inputs), targets)`` at the parameters that ``theta`` holds, in ``theta``'s dtype and device.

    ``module`` itself is never changed: f calls a copy's forward with ``theta``'s values (``torch.func``), its
    buffers cast alongside. ``unflatten(module, g)`` splits a gradient of f back into named parameters.

    Args:
        module: any ``nn.Module``; every parameter that requires grad is in ``theta``, in ``named_parameters``
            order. Put one with dropout in eval mode first: a random f has no derivative to check.
        inputs: the batch it sees, e.g. ``(B, 2)``.
        targets: what ``criterion`` compares its output with (floating ones are cast to f's dtype too).
        criterion: ``(output, targets) -> scalar loss``, e.g. ``torch.nn.functional.cross_entropy``.
    """
    params = {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError(f"{type(module).__name__} has no parameter that requires grad: nothing to differentiate")
    net = copy.deepcopy(module)
    buffers = {name: b.detach() for name, b in net.named_buffers()}
    theta = torch.cat([p.reshape(-1) for p in params.values()])

    def f(flat: Tensor) -> Tensor:
        state = {**{name: _like(b, flat) for name, b in buffers.items()}, **unflatten(net, flat)}
        return criterion(functional_call(net, state, (_like(inputs, flat),)), _like(targets, flat))

    return theta, f


def _like(t: Tensor, flat: Tensor) -> Tensor:
    """``t`` on ``flat``'s device, and in its dtype if ``t`` is floating (class labels stay integers)."""
    return t.to(flat) if t.is_floating_point() else t.to(flat.device)


def unflatten(module: nn.Module, flat: Tensor) -> dict[str, Tensor]:
    """``{parameter name: the slice of flat shaped like that parameter}``, as ``module_loss`` flattened them."""
    shapes = [(name, p.shape) for name, p in module.named_parameters() if p.requires_grad]
    sizes = [math.prod(shape) for _, shape in shapes]
    if flat.numel() != sum(sizes):
        raise ValueError(f"flat has {flat.numel()} entries, but {type(module).__name__}'s parameters have "
                         f"{sum(sizes)}")
    return {name: part.view(shape) for (name, shape), part in zip(shapes, flat.split(sizes))}


def max_abs_difference(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """The largest |a - b| over every entry of every tensor the two mappings share by name."""
    if not a.keys() & b.keys():
        raise ValueError(f"the gradients share no name: {sorted(a)} vs {sorted(b)}")
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a.keys() & b.keys())
