"""Which optimizer steps GradientFlowMonitor measures: one in n of each epoch, counted per optimizer."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer


class StepSampler:
    """Counts each optimizer's steps in the current epoch; a step is measured when its count is a multiple of ``n``.

    So the first step of every epoch is measured (full-batch training: every epoch). The counts are part of the
    callback's checkpoint state, so a run resumed in the middle of an epoch measures the steps the uninterrupted
    run measured.
    """

    def __init__(self, n: int) -> None:
        self.n, self.epoch, self.counts = n, -1, {}  # counts: optimizer index -> steps this epoch

    def measures(self, trainer: Trainer, optimizer: Any) -> bool:
        """Count this step of ``optimizer``; whether it is one to measure."""
        if trainer.current_epoch != self.epoch:
            self.epoch, self.counts = trainer.current_epoch, {}
        index = next((i for i, o in enumerate(trainer.optimizers) if o is optimizer), -1)
        count = self.counts.get(index, 0)
        self.counts[index] = count + 1
        return count % self.n == 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "counts": [[i, c] for i, c in sorted(self.counts.items())]}  # plain values

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.counts = state["epoch"], {i: c for i, c in state["counts"]}
