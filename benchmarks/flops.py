"""FLOP rates: the machine's float32 matmul rate, a network's FLOPs per sample, and what a run achieved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import Side, Timings

MATMUL_SIDE = "float32 matmul"


def matmul_side(n: int = 2048, repeats: int = 5) -> Side:
    """A side timing ``repeats`` ``(n, n) @ (n, n)`` float32 matmuls, interleaved with a workload's other sides, so
    the machine's rate is measured in the same minutes as the runs compared with it (this VM's speed drifts by
    up to 1.5x over a benchmark run)."""
    def prepare() -> Callable[[], dict[str, Any]]:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up, untimed

        def call() -> dict[str, Any]:
            for _ in range(repeats):
                a @ b
            return {"flops": 2 * n**3 * repeats}
        return call
    return prepare


def flops_per_sample(net: nn.Module, input_shape: Sequence[int], classes: int, batch: int = 128) -> tuple[float, float]:
    """(training, evaluation) FLOPs per sample: forward + backward of one batch in train mode, forward in eval mode.

    Counted by ``FlopCounterMode`` (matmuls and convolutions; activations and pooling are not counted).
    """
    x, y = torch.randn(batch, *input_shape), torch.randint(0, classes, (batch,))
    net.train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), y).backward()
    train = counter.get_total_flops() / batch
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return train, counter.get_total_flops() / batch


def achieved_gflops(result: dict[str, Any], seconds: float, train_flops: float, eval_flops: float) -> float:
    """GFLOP/s of a whole run: its training and evaluation FLOPs over its wall time."""
    return (result["train_samples"] * train_flops + result["eval_samples"] * eval_flops) / seconds / 1e9


def rate_notes(timings: Timings, net: Callable[[], nn.Module], input_shape: Sequence[int], classes: int,
               target_side: str | None = None, target_fraction: float | None = None) -> list[str]:
    """Each side's achieved GFLOP/s, training and evaluation FLOPs counted alike, against the matmul rate timed by
    the workload's ``matmul_side`` (named ``MATMUL_SIDE``).

    With a target, ``target_side``'s note ends ``(target ≥ 40%: met)`` or ``(target ≥ 40%: not met)``.
    """
    train, evaluate = flops_per_sample(net(), input_shape, classes)
    peak = timings.results[MATMUL_SIDE]["flops"] / timings.median(MATMUL_SIDE) / 1e9  # measured between the runs
    notes = [f"float32 matmul rate (5 of 2048 x 2048 per repeat, interleaved with the runs, median): {peak:.1f} "
             "GFLOP/s",
             f"FLOPs per sample (FlopCounterMode: convs and matmuls): {train / 1e6:.1f} M training "
             f"(forward + backward), {evaluate / 1e6:.1f} M evaluation (forward)"]
    for side, result in timings.results.items():
        if side == MATMUL_SIDE:
            continue
        rate = achieved_gflops(result, timings.median(side), train, evaluate)
        verdict = ""
        if side == target_side and target_fraction is not None:
            verdict = f" (target ≥ {target_fraction:.0%}: {'met' if rate / peak >= target_fraction else 'not met'})"
        notes.append(f"{side}: {rate:.1f} GFLOP/s over the whole run ({result['train_samples']} samples trained, "
                     f"{result['eval_samples']} evaluated, all overheads included) = {rate / peak:.0%} of the "
                     f"matmul rate{verdict}")
    return notes
