"""``dlbasics lr-find``: Lightning's learning-rate range test on a config's own model, data and optimizer.

The range test (Smith, "Cyclical Learning Rates") trains from the config's initial weights for ``num_training``
steps while the learning rate grows from ``min_lr`` to ``max_lr``, records the smoothed training loss at each, and
suggests the learning rate where that loss falls fastest (per decade of learning rate: see ``steepest_fall``; the
pick of Lightning 2.6's own ``suggestion()`` is kept beside it). Lightning's finder takes the optimizer the model's
``configure_optimizers`` builds (the config's class, momentum, betas and weight decay: only its learning rate is
swept; the config's ``lr_scheduler`` is replaced by the sweep), then restores the weights from a checkpoint it
removes. Here the restore is verified bitwise, the plot and the numbers go into the run folder ``dlbasics fit``
would use, and settings that can't work are refused before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.core.optimizer import _MockOptimizer

from dlbasics.checks import check_choice, check_number
from dlbasics.distributed import release_process_group
from dlbasics.figures import figure_dir, new_figure, save_figure
from dlbasics.lightning_cli import SETTINGS_HINT, cli_main
from dlbasics.models.classifier import Classifier
from dlbasics.models.regressor import Regressor

MODES = ("exponential", "linear")
SKIP_BEGIN, SKIP_END = 10, 1  # Lightning's suggestion ignores the first 10 losses and the last one
MIN_STEPS = SKIP_BEGIN + SKIP_END + 2  # ... and needs 2 more to take a slope
LOSS_LABELS = {Classifier: "training loss: cross-entropy (nats)", Regressor: "training loss: MSE (target units²)"}


@dataclass(frozen=True)
class RangeTest:
    """The range test's settings (Lightning's ``Tuner.lr_find`` defaults).

    Args:
        min_lr: learning rate of the first step.
        max_lr: learning rate the last step reaches.
        num_training: number of training steps (one learning rate each); epochs run until this many are done.
        mode: how the learning rate grows from step to step: ``exponential`` (a fixed factor) or ``linear``.
        early_stop_threshold: stop once the smoothed loss exceeds this many times its best value; None: never.
    """

    min_lr: float = 1e-8
    max_lr: float = 1.0
    num_training: int = 100
    mode: str = "exponential"
    early_stop_threshold: float | None = 4.0

    def __post_init__(self) -> None:
        check_number(self.min_lr, "min_lr")
        check_number(self.max_lr, "max_lr")
        if self.min_lr <= 0 or self.max_lr <= 0:
            raise ValueError(f"min_lr {self.min_lr!r} and max_lr {self.max_lr!r} must both be positive learning rates")
        if self.min_lr >= self.max_lr:
            raise ValueError(f"min_lr {self.min_lr!r} must be smaller than max_lr {self.max_lr!r}")
        n = self.num_training
        if isinstance(n, bool) or not isinstance(n, int) or n < MIN_STEPS:
            raise ValueError(f"num_training {n!r} must be an integer >= {MIN_STEPS}: the suggestion skips the first "
                             f"{SKIP_BEGIN} and the last {SKIP_END} losses and needs 2 more to take a slope")
        check_choice(self.mode, "mode", MODES)
        if self.early_stop_threshold is not None:
            check_number(self.early_stop_threshold, "early_stop_threshold", minimum=1.0)


@dataclass
class RangeTestResult:
    """What the range test found: one learning rate and smoothed loss per step it ran."""

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    lightning_suggestion: float | None
    optimizer: str
    settings: dict[str, Any]

    @property
    def divergence_lr(self) -> float | None:
        """The learning rate at which the smoothed loss passed ``early_stop_threshold`` times its best and the
        test stopped (the edge of divergence); None when it ran all ``num_training`` steps."""
        return self.lrs[-1] if self.lrs and len(self.lrs) < self.settings["num_training"] else None


class ConfiguredOptimizerFinder(LearningRateFinder):
    """Lightning's finder that refuses a model with no optimizer and records which optimizer it sweeps."""

    def __init__(self, test: RangeTest) -> None:
        super().__init__(min_lr=test.min_lr, max_lr=test.max_lr, num_training_steps=test.num_training,
                         mode=test.mode, early_stop_threshold=test.early_stop_threshold, update_attr=False)
        self._early_exit = True  # as Tuner.lr_find: stop the fit once the range test is done
        self.optimizer_name = ""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        optimizers = trainer.optimizers
        if not optimizers or isinstance(optimizers[0], _MockOptimizer):
            raise ValueError(f"lr-find: {type(pl_module).__name__}.configure_optimizers returned no optimizer; "
                             "give the model one (e.g. --model.init_args.optimizer torch.optim.Adam)")
        self.optimizer_name = type(optimizers[0]).__name__  # the one the finder sweeps: trainer.optimizers[0]
        # The finder stops after num_training steps, but the config's max_epochs would stop it first on data
        # with few batches per epoch (full batch: one step an epoch).
        max_epochs, trainer.fit_loop.max_epochs = trainer.fit_loop.max_epochs, -1
        try:
            super().on_fit_start(trainer, pl_module)
        finally:
            trainer.fit_loop.max_epochs = max_epochs


def find_learning_rate(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule | None,
                       test: RangeTest) -> RangeTestResult:
    """Run the range test on ``model`` and check its weights (and buffers) are bitwise those it started with."""
    if trainer.fast_dev_run:
        raise ValueError("lr-find can't run with trainer.fast_dev_run (Lightning skips the range test then); "
                         "drop --trainer.fast_dev_run")
    before = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    finder = ConfiguredOptimizerFinder(test)
    trainer.callbacks = [finder, *trainer.callbacks]
    try:
        trainer.fit(model, datamodule=datamodule)
    finally:
        trainer.callbacks = [cb for cb in trainer.callbacks if cb is not finder]
    after = model.state_dict()
    changed = [name for name, value in before.items() if not torch.equal(value, after[name].detach().cpu())]
    if changed or before.keys() != after.keys():
        raise RuntimeError(f"lr-find did not restore the model's weights: {', '.join(changed) or 'other keys'}")
    found = finder.optimal_lr  # Lightning's _LRFinder: the results, and its own suggestion
    lrs, losses = list(found.results["lr"]), [float(x) for x in found.results["loss"]]
    return RangeTestResult(lrs=lrs, losses=losses, suggestion=steepest_fall(lrs, losses, test.mode == "exponential"),
                           lightning_suggestion=found.suggestion(SKIP_BEGIN, SKIP_END),
                           optimizer=finder.optimizer_name, settings=asdict(test))


def steepest_fall(lrs: list[float], losses: list[float], log_x: bool) -> float | None:
    """The learning rate where the smoothed loss falls fastest, as Lightning's suggestion picks it (the first 10
    and the last loss skipped, non-finite ones dropped), but the slope taken per decade of learning rate when the
    sweep is exponential. Lightning 2.6 takes it per unit of learning rate even then, so that the noise between
    the tightly spaced small rates outweighs the real fall (Lightning issue 21141): on moons_mlp it suggests 5e-7.

    Returns:
        One of ``lrs``, or None when fewer than 2 finite losses are left.
    """
    x = torch.tensor(lrs[SKIP_BEGIN:-SKIP_END], dtype=torch.float64)
    y = torch.tensor(losses[SKIP_BEGIN:-SKIP_END], dtype=torch.float64)
    x, y = x[torch.isfinite(y)], y[torch.isfinite(y)]
    if len(y) < 2:
        return None
    slope = torch.gradient(y, spacing=[x.log10() if log_x else x])[0]
    return float(x[slope.argmin()])


def plot_range_test(result: RangeTestResult, loss_label: str) -> Any:
    """Smoothed loss against learning rate (log x for an exponential sweep), the suggestion and the rate where the
    test stopped (``divergence_lr``) marked."""
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    log_x = result.settings["mode"] == "exponential"
    ax.plot(result.lrs, result.losses, color="tab:blue", label="smoothed training loss (one step per lr)")
    if log_x:
        ax.set_xscale("log")
    marks = {result.suggestion: ("tab:red", 9, "suggestion: {:.3g} (steepest fall"
                                                + (" per decade)" if log_x else ")"))}
    marks.setdefault(result.lightning_suggestion, ("dimgrey", 6, "Lightning 2.6's pick: {:.3g} (slope per unit lr)"))
    for lr, (color, size, text) in marks.items():
        if lr is not None:
            ax.plot(lr, result.losses[result.lrs.index(lr)], "o", color=color, markersize=size, label=text.format(lr))
    if result.divergence_lr is not None:
        ax.axvline(result.divergence_lr, color="black", linestyle="--", linewidth=1,
                   label=f"stopped at {result.divergence_lr:.3g}: loss above "
                         f"{result.settings['early_stop_threshold']:g}x its best")
    clip_divergence(ax, result.lrs, result.losses)
    ax.set_xlabel("learning rate (per step; no unit)" + (", log scale" if log_x else ""))
    ax.set_ylabel(loss_label)
    none = "" if result.suggestion is not None else " (too few for a suggestion)"
    ax.set_title(f"Learning-rate range test: {result.optimizer}, {len(result.lrs)} steps{none}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    fig.supxlabel("loss: Lightning's running mean of the batch losses (beta 0.98); its bias correction is one step "
                  "off, which\nhalves the first values: an early rise is that (Lightning issue 14167), not the model",
                  fontsize=8, color="dimgrey")
    return fig


def clip_divergence(ax: Any, lrs: list[float], losses: list[float]) -> None:
    """Keep the y-axis on the loss up to its lowest point: a diverging end would squash the curve flat."""
    finite = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if math.isfinite(loss)]
    if len(finite) <= SKIP_BEGIN:  # too short to tell a divergence from Lightning's low first values
        return
    lowest = min(range(SKIP_BEGIN, len(finite)), key=lambda i: finite[i][1])
    head = [loss for _, loss in finite[:lowest + 1]]
    floor, top = min(head), max(head)
    margin = 0.1 * (top - floor) or 0.1 * abs(top) or 0.1
    if max(loss for _, loss in finite) > top + margin:
        ax.set_ylim(floor - margin, top + margin)
        ax.text(0.99, 0.98, f"diverges off the top: {finite[-1][1]:.3g} at lr {finite[-1][0]:.3g}",
                transform=ax.transAxes, ha="right", va="top", fontsize=8, color="tab:blue")


def save_range_test(result: RangeTestResult, trainer: Trainer, model: LightningModule) -> tuple[Path, Path]:
    """``<run folder>/figures/lr_find.png`` and ``<run folder>/lr_find.json``."""
    loss_label = next((text for cls, text in LOSS_LABELS.items() if isinstance(model, cls)), "training loss")
    plot = save_figure(plot_range_test(result, loss_label), figure_dir(trainer) / "lr_find.png")
    numbers = plot.parent.parent / "lr_find.json"
    # NaN (a step that returned no loss) and inf are not JSON: null
    losses = [x if math.isfinite(x) else None for x in result.losses]
    numbers.write_text(json.dumps({**asdict(result), "losses": losses}, indent=1) + "\n")
    return plot, numbers


def build_parser() -> argparse.ArgumentParser:
    defaults = RangeTest()
    parser = argparse.ArgumentParser(
        prog="dlbasics lr-find", allow_abbrev=False, exit_on_error=False,
        description="Lightning's learning-rate range test on a config's model, data and optimizer class; the "
                    "model's weights are restored afterwards. Prints the suggested learning rate and saves the "
                    "loss vs learning-rate plot and lr_find.json in the run folder.",
        epilog="Every `dlbasics fit` setting works too (--config, --model.*, --data.*, --trainer.*): see "
               f"dlbasics fit --help. {SETTINGS_HINT}")
    parser.add_argument("--min_lr", type=float, default=defaults.min_lr,
                        help="learning rate of the first step (default: %(default)g)")
    parser.add_argument("--max_lr", type=float, default=defaults.max_lr,
                        help="learning rate the last step reaches (default: %(default)g)")
    parser.add_argument("--num_training", type=int, default=defaults.num_training,
                        help=f"training steps, one learning rate each, at least {MIN_STEPS} (default: %(default)d)")
    parser.add_argument("--mode", default=defaults.mode, help=f"{' or '.join(MODES)} growth (default: %(default)s)")
    parser.add_argument("--early_stop_threshold", type=optional_float, default=defaults.early_stop_threshold,
                        help="stop when the smoothed loss exceeds this many times its best; none: never "
                             "(default: %(default)g)")
    return parser


def optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def lr_find_main(argv: list[str]) -> int:
    """``dlbasics lr-find [range-test options] --config C [fit settings]``: 0 with a suggestion, 1 without one."""
    options, rest = build_parser().parse_known_args(argv)
    test = RangeTest(**vars(options))
    try:
        cli = cli_main(rest, run=False, parser_kwargs={"exit_on_error": False, "epilog": SETTINGS_HINT})
        result = cli._without_leftovers(find_learning_rate, trainer=cli.trainer, model=cli.model,
                                        datamodule=cli.datamodule, test=test)
        plot, numbers = save_range_test(result, cli.trainer, cli.model)
    finally:
        release_process_group()
    lrs = result.lrs
    print(f"Range test: {len(lrs)} steps of {result.optimizer}, learning rate {lrs[0]:.3g} to {lrs[-1]:.3g} "
          f"({test.mode}; asked for {test.min_lr:g} to {test.max_lr:g})")
    if result.divergence_lr is not None:
        print(f"Stopped after {len(lrs)} of {test.num_training} steps: the smoothed loss passed "
              f"{test.early_stop_threshold:g} times its best (--early_stop_threshold) at learning rate "
              f"{result.divergence_lr:.3g}, where training starts to diverge")
    print(f"Plot: {plot}\nNumbers: {numbers}")
    if result.suggestion is None:
        print(f"No suggestion: {len(lrs)} steps ran before the loss diverged, and the suggestion needs "
              f"{MIN_STEPS} finite losses; lower --max_lr or raise --early_stop_threshold")
        return 1
    configs = [str(c) for c in (cli.config.get("config") or [])]
    config = configs[0] if len(configs) == 1 else "CONFIG"
    if result.lightning_suggestion != result.suggestion:
        print(f"(Lightning's own pick, {result.lightning_suggestion:.3g}, takes the loss's slope per unit of "
              "learning rate, not per decade; see the plot)")
    print(f"Suggested learning rate: {result.suggestion:.3g}\n"
          f"Train with it: dlbasics fit --config {config} --model.init_args.optimizer.init_args.lr "
          f"{result.suggestion:.3g}")
    return 0
