"""A seed ensemble: several ``System``s (one config at several seeds) trained side by side in one Lightning fit.

Lightning's fixed cost per epoch (its loops, hooks and logging, ~10 ms) dwarfs the arithmetic of the lessons'
tiny full-batch runs; trained in one fit, N seeds pay it once instead of N times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from dlbasics.loggers import tag_for
from dlbasics.models.system import System

# Optimizers whose update of a parameter reads the other parameters: one of them over all members would couple them.
COUPLING_OPTIMIZERS = (torch.optim.LBFGS,)  # treats all parameters as one vector (one line search)


class MemberRNG:
    """One member's own torch random number generator states, swapped in around its steps.

    Dropout draws from torch's global generator. A member that draws from its own, captured right after it was
    built, draws the numbers it would have drawn trained alone; the ensemble's other members and the code around
    them see the global generator as if the member had drawn nothing.

    Args:
        cuda: swap the CUDA generators too (members training on a GPU); otherwise only the CPU one.
    """

    def __init__(self, cuda: bool = False) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if cuda else None

    @contextmanager
    def active(self) -> Iterator[None]:
        """Draw from this member's generators inside the block; keep where they got to for the next block."""
        outer_cpu = torch.get_rng_state()
        outer_cuda = torch.cuda.get_rng_state_all() if self.cuda is not None else None
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            torch.set_rng_state(outer_cpu)
            if self.cuda is not None:
                self.cuda = torch.cuda.get_rng_state_all()
                torch.cuda.set_rng_state_all(outer_cuda)


class SeedEnsemble(LightningModule):
    """Several ``System``s trained in one fit, each on its own batches: typically one config at several seeds.

    Every step runs each member on its batch (a ``ZippedDataModule`` gives a list, one batch per member) and returns
    the sum of their losses, so each member's parameters get exactly the gradient of its own loss. One optimizer,
    built by the members' optimizer factory, steps all parameters: Adam, AdamW and SGD update each parameter from
    its own gradient and state alone, so that equals one optimizer per member. Settings that would couple the
    members are refused: a learning-rate scheduler (one schedule for all; ``ReduceLROnPlateau`` would watch one
    loss), gradient clipping (``gradient_clip_val`` clips by the norm of all members' gradients together), and
    ``LBFGS`` (one line search over all parameters). Each member's loss and metrics are logged as
    ``<stage>/<name>/seed_<seed>`` (``train/loss/seed_3``); on a TensorBoard logger the run also gets a
    custom-scalars layout with one chart per metric holding every seed's curve.

    Callbacks see the ensemble: the members' layers are named ``members.<i>.<name in the member>``. Only the
    members' ``update_metrics``/``log_metrics`` run; their own Lightning hooks (``setup``, checkpoint hooks) do not.

    Args:
        members: the systems, all built with the same optimizer settings.
        seeds: each member's seed, used in its metric names.
        rngs: each member's generator states (``MemberRNG``, captured right after that member was built), swapped
            in around its steps so that its dropout draws what it would draw trained alone; None: all members draw
            from the global generators in turn.
    """

    def __init__(self, members: Sequence[System], seeds: Sequence[int],
                 rngs: Sequence[MemberRNG] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("SeedEnsemble needs at least one member, got none")
        if len(seeds) != len(members) or (rngs is not None and len(rngs) != len(members)):
            raise ValueError(f"SeedEnsemble got {len(members)} members, {len(seeds)} seeds and "
                             f"{'no' if rngs is None else len(rngs)} rngs; give one seed (and rng) per member")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"SeedEnsemble seeds {list(seeds)} repeat a seed; each member needs its own")
        for i, member in enumerate(members):
            if not isinstance(member, System):
                raise TypeError(f"SeedEnsemble member {i} is a {type(member).__name__}; members must be "
                                "dlbasics.models.System subclasses (Classifier, Regressor)")
        check_independent(members)
        self.members = nn.ModuleList(members)
        self.seeds = list(seeds)
        self.rngs = list(rngs) if rngs is not None else None

    def forward(self, x: Tensor) -> Tensor:
        """Every member's output for the same inputs: ``(members, B, ...)``."""
        return torch.stack([member(x) for member in self.members])

    def training_step(self, batch: Sequence[tuple[Tensor, Tensor]], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Sequence[tuple[Tensor, Tensor]], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Sequence[tuple[Tensor, Tensor]], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def _shared_step(self, batch: Sequence[tuple[Tensor, Tensor]], stage: str) -> Tensor:
        if len(batch) != len(self.members):
            raise ValueError(f"SeedEnsemble got {len(batch)} batches for {len(self.members)} members; train it on "
                             "a ZippedDataModule of one datamodule per member")
        losses = []
        for i, (member, member_batch) in enumerate(zip(self.members, batch)):
            with self.rngs[i].active() if self.rngs is not None else nullcontext():
                losses.append(member.update_metrics(member_batch, stage))
            member.log_metrics(stage, log=self.log, suffix=f"/seed_{self.seeds[i]}")
        return torch.stack(losses).sum()  # d(sum)/d(loss_i) = 1: each member gets its own loss's gradient

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.members[0].optimizer_factory(self.parameters())

    def on_fit_start(self) -> None:
        # TensorBoard's custom-scalars plugin: one chart per metric with every seed's curve ("CUSTOM SCALARS" tab).
        for logger in self.loggers:
            add_layout = getattr(getattr(logger, "experiment", None), "add_custom_scalars", None)
            if callable(add_layout) and self.trainer.is_global_zero:
                add_layout(seed_layout(self.members[0], partial(tag_for, logger)))

    def setup(self, stage: str) -> None:
        clip = self.trainer.gradient_clip_val
        if clip:
            raise ValueError(f"SeedEnsemble refuses trainer.gradient_clip_val={clip!r}: clipping acts on all members' "
                             "gradients together, so a member would not train as it does alone; train the seeds "
                             "one by one (dlbasics.lessons.runner.run_lesson_run) or drop the clipping")


def seed_layout(member: System, tag: Callable[[str], str] = str) -> dict[str, dict[str, list]]:
    """A TensorBoard custom-scalars layout: per stage, one multi-line chart per metric over the seeds' tags, as the
    logger writes them (``tag``: ``loggers.tag_for``, ``val_on_test/loss/seed_0`` for validation on the test split)."""
    names = ["loss", *member.metrics["fit"].keys()]
    charts = {stage: [tag(f"{stage}/{name}") for name in names] for stage in ("train", "val", "test")}
    return {f"seeds: {tag(stage)}": {chart: ["Multiline", [rf"^{re.escape(chart)}/seed_"]] for chart in stage_charts}
            for stage, stage_charts in charts.items()}


def check_independent(members: Sequence[System]) -> None:
    """Raise a ValueError naming the setting if one optimizer over all members would couple them, or if the members'
    optimizer settings differ (one optimizer is built from the first member's)."""
    probes = []
    for i, member in enumerate(members):
        if member.lr_scheduler_factory is not None:
            raise ValueError(f"SeedEnsemble refuses member {i}'s lr_scheduler {member.lr_scheduler_factory!r}: one "
                             "scheduler would set every member's learning rate; train the seeds one by one or drop "
                             "model.lr_scheduler")
        probe = member.optimizer_factory([nn.Parameter(torch.zeros(1, 1))])
        if isinstance(probe, COUPLING_OPTIMIZERS):
            raise ValueError(f"SeedEnsemble refuses the optimizer {type(probe).__name__}: its update of one "
                             "parameter depends on all the others; use a per-parameter optimizer (SGD, Adam, AdamW) "
                             "or train the seeds one by one")
        probes.append((type(probe), probe.defaults))
    for i, probe in enumerate(probes[1:], start=1):
        if probe != probes[0]:
            raise ValueError(f"SeedEnsemble member {i}'s optimizer {probe[0].__name__} {probe[1]} differs from "
                             f"member 0's {probes[0][0].__name__} {probes[0][1]}; ensemble members of one config")
