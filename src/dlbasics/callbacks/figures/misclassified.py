"""A grid of the inputs a classifier gets wrong (and, optionally, right), titled with predicted and true class."""

from __future__ import annotations

import math
from typing import Any, Literal

from lightning.pytorch import LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor
from torch.nn import functional as F

from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures._images import draw_input, reshaped
from dlbasics.callbacks.figures.base import FigureCallback, forward_eval, run_tag, split_batch
from dlbasics.checks import check_choice, check_int, check_sizes
from dlbasics.figures import new_figure, publish_figure

COLUMNS = 8  # pictures per row of the grid


class Misclassified(FigureCallback):
    """Show inputs of a validation or test run that the model classifies wrongly, and optionally correctly.

    Works with any LightningModule whose ``forward(x)`` returns class logits ``(B, C)``. Predictions come from an
    extra forward pass on each batch (eval mode, no gradients): ``pred = argmax``, ``loss`` = per-sample cross
    entropy. With ``order="first"`` the picks are the first wrong (right) samples of the split, in the split's
    order also under DDP; with ``"highest_loss"`` those with the highest loss (the most confidently wrong; for
    right ones, the least confident). Each rank keeps only its own best candidates, which are then gathered, so
    memory stays at a few inputs whatever the split size.

    Inputs are drawn as pictures, each min-max scaled (model-agnostic un-normalisation): ``(C, H, W)`` or
    ``(H, W)`` inputs directly, flat inputs reshaped by ``image_shape``; other vectors as their values (up to 8)
    or bars. Titles read ``pred P / true T`` (red when wrong, green when right), correct ones in the first rows.
    At the end of each run of the stage (``val``: each validation epoch but the sanity check), published as
    TensorBoard image ``misclassified/<name>`` at the global step (``misclassified/<name>/validate`` in a
    ``validate`` run, which has the fit's last step) and
    ``figures/misclassified_<name>.png`` (``val``: ``..._epoch<NNN>.png``), ``<name>`` being the stage, with
    ``_highest_loss`` appended for that order.

    In memory: ``picks``, the latest ``{"wrong": rows, "right": rows}`` (``right`` if ``n_right`` > 0), ``rows``
    being ``{"x", "target", "pred", "loss", "position"}`` tensors (``position``: index in the split), and
    ``history``, one entry per run ``{"epoch", "step", "stage", "n_wrong", "n_samples"}`` over the whole split.

    Args:
        stage: ``val`` or ``test``.
        n_wrong: number of misclassified inputs to show.
        n_right: number of correctly classified inputs to show as well (L6 shows 8 and 8).
        order: which ones: ``first`` in the split, or ``highest_loss``.
        image_shape: shape to reshape each input to before drawing, e.g. ``[28, 28]`` for flat MNIST; None
            draws inputs as they come.
    """

    def __init__(self, stage: Literal["val", "test"] = "test", n_wrong: int = 8, n_right: int = 0,
                 order: Literal["first", "highest_loss"] = "first", image_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.stage = check_choice(stage, "stage", ("val", "test"))
        self.n_wrong = check_int(n_wrong, "n_wrong", minimum=0)
        self.n_right = check_int(n_right, "n_right", minimum=0)
        if n_wrong + n_right == 0:
            raise ValueError("n_wrong and n_right are both 0: nothing to show; set at least one above 0")
        self.order = check_choice(order, "order", ("first", "highest_loss"))
        self.image_shape = None if image_shape is None else tuple(check_sizes(image_shape, "image_shape"))
        self.picks: dict[str, dict[str, Tensor]] = {}
        self.history: list[dict[str, Any]] = []
        # The wrong-picks collector also counts every sample (seen) and every wrong one (matched).
        self._collectors = {"wrong": Collector(limit=n_wrong), "right": Collector(limit=n_right)}

    def stage_start(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == self.stage:
            for collector in self._collectors.values():
                collector.reset()

    def stage_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch: Any) -> None:
        if stage != self.stage or trainer.sanity_checking:
            return
        x, y = split_batch(batch, "Misclassified")
        reshaped(x[0], self.image_shape)  # check on every rank: a failure only in rank zero's drawing would hang DDP
        logits = forward_eval(pl_module, x)  # the extra forward pass: `outputs` of the step may be the loss only
        if logits.dim() != 2 or logits.shape[1] < 2:
            raise ValueError(f"Misclassified needs class logits of shape (batch, classes) from forward, got "
                             f"{tuple(logits.shape)}")
        y = y.to(logits.device)
        pred = logits.argmax(1)
        loss = F.cross_entropy(logits.float(), y, reduction="none")
        rows = {"x": x, "target": y, "pred": pred, "loss": loss}
        key = -loss if self.order == "highest_loss" else None
        self._collectors["wrong"].add(trainer, rows, mask=pred != y, key=key)
        if self.n_right:
            self._collectors["right"].add(trainer, rows, mask=pred == y, key=key)

    def stage_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != self.stage or trainer.sanity_checking:
            return
        # Collectives: every rank gathers (the same decisions on every rank), rank zero draws.
        gathered = {kind: c.gather(trainer) for kind, c in self._collectors.items() if kind == "wrong" or self.n_right}
        if not gathered["wrong"]:
            return  # no batch at all
        self.picks = {kind: {k: v for k, v in rows.items() if k != "key"} for kind, rows in gathered.items()}
        counts = self._collectors["wrong"].counts
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "stage": stage,
                             "n_wrong": counts["matched"], "n_samples": counts["seen"]})
        if trainer.is_global_zero:
            fitting = trainer.state.fn == "fit"
            when = f", epoch {trainer.current_epoch}" if fitting else ""
            title = (f"{stage}{when}: {counts['matched']} of {counts['seen']} misclassified "
                     f"({counts['matched'] / counts['seen']:.1%}); shown: {self.order.replace('_', ' ')}")
            fig = picks_figure(self.picks, title, self.image_shape)
            name = stage if self.order == "first" else f"{stage}_{self.order}"
            suffix = f"_epoch{trainer.current_epoch:03d}" if fitting else ""
            tag = f"misclassified/{name}{run_tag(trainer, stage)}"  # a validate run's: its own tag
            publish_figure(trainer, fig, tag, f"misclassified_{name}{suffix}")


def picks_figure(picks: dict[str, dict[str, Tensor]], title: str,
                 image_shape: tuple[int, ...] | None = None) -> Figure:
    """Rows of up to ``COLUMNS`` inputs: the right picks first (green titles), then the wrong ones (red).

    Args:
        picks: ``Misclassified.picks``.
        title: the figure title.
        image_shape: passed to ``draw_input``.
    """
    counts = {kind: len(picks.get(kind, {}).get("target", ())) for kind in ("right", "wrong")}
    columns = max(1, min(COLUMNS, max(counts.values())))
    rows = max(1, sum(math.ceil(n / columns) for n in counts.values()))
    fig = new_figure(1.3 * columns + 0.4, 1.45 * rows + 0.5)
    fig.suptitle(title, fontsize=10)
    grid = fig.subplots(rows, columns, squeeze=False)
    for ax in grid.flat:
        ax.set_axis_off()
    row = 0
    for kind, n in counts.items():
        for i in range(n):
            ax = grid[row + i // columns, i % columns]
            ax.set_axis_on()
            draw_input(ax, picks[kind]["x"][i], image_shape)
            pred, true = int(picks[kind]["pred"][i]), int(picks[kind]["target"][i])
            ax.set_title(f"pred {pred} / true {true}", fontsize=8, color="tab:red" if pred != true else "tab:green")
        row += math.ceil(n / columns)
    return fig
