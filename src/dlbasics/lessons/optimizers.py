"""L8 Optimizers: SGD, momentum, RMSprop, Adam and AdamW on ill-conditioned 2-D surfaces (L8.a), SGD against
Adam when one input feature is 100x larger than the other (L8.b), and all five on the moons MLP (L8.c, in
``optimizers_moons``).

L8.a's trajectories use torch's optimizers directly on a 2-element parameter (``dlbasics.optim_surfaces``), not a
Lightning run: there is no data and no network, only the surface. L8.b is Lightning runs of the L1 tiny net. Each
optimizer gets the same tuning budget, the same log grid of learning rates, and is judged at its best rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from dlbasics.callbacks import UpdateSizeMonitor
from dlbasics.figures import new_figure
from dlbasics.lessons import optimizers_moons
from dlbasics.lessons.claims import Claim
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.plots import caption, lines_figure, sweep_plot
from dlbasics.lessons.runner import Run, RunResult
from dlbasics.optim_surfaces import (
    OPTIMIZERS,
    QUADRATIC,
    ROSENBROCK,
    Paths,
    Surface,
    starts_for,
    trajectories,
)

LRS = tuple(float(lr) for lr in np.logspace(-4, 0, 9))  # 1e-4 ... 1 in half decades, the same for every optimizer
# L8.b: the L1 tiny net (2 -> 8 -> 2 ReLU, 80 full-batch epochs, linear task x0 + x1 > 0, N=100) with feature 0
# multiplied by 100, at every rate of the grid. Without the config's diagnostics: SGD's largest rates diverge, and
# NonFiniteGuard would stop every seed of the ensemble with the first; the lesson reports the diverged runs instead.
SCALE = "--data.input_scale=[100, 1]"
SCALED = {(opt, lr): Run(f"scaled_{opt.lower()}_lr{lr:.2g}", "tiny_activation.yaml",
                         (SCALE, "--trainer.callbacks=[]", f"--model.optimizer=torch.optim.{opt}",
                          f"--model.optimizer.lr={lr:.2g}")) for opt in ("SGD", "Adam") for lr in LRS}
RUNS = (*SCALED.values(), *optimizers_moons.MOONS.values())
FIRST = "network.layers.0.weight"  # the first Linear layer: column 0 holds the weights from the scaled feature
THRESHOLD = 1e-3  # "reaches the minimum": the loss stays below this (both surfaces have their minimum at 0)
STEPS = {QUADRATIC.name: 500, ROSENBROCK.name: 2000}
JITTER = 0.05  # each seed starts at the surface's start plus a normal offset of this std
NAME = "surfaces"  # each seed's SeedPaths in ctx.by_seed, where the claims read them
SETTING = ("the project's own setting (the lessons published none): torch's optimizers with their default settings "
           f"on a 2-element parameter, learning rate from the same 9-value grid 1e-4..1, loss threshold {THRESHOLD:g}")

__all__ = ["CLAIMS", "RUNS", "run"]


@dataclass(frozen=True)
class SeedPaths:
    """One seed's trajectories: ``paths[surface name][optimizer]``, every learning rate of the grid, one start."""

    paths: dict[str, dict[str, Paths]]

    def best(self, surface: Surface, optimizer: str) -> tuple[float, float, float]:
        """(learning rate, steps to the threshold (inf: not reached), final loss) at the optimizer's best rate."""
        paths = self.paths[surface.name][optimizer]
        i = int(paths.best_lr(THRESHOLD)[0])
        return paths.lrs[i], float(paths.steps_to(THRESHOLD)[0, i]), float(paths.losses[0, i, -1])


def steps_ratio(optimizer: str) -> Any:
    """The claim measure: the optimizer's steps to the threshold on the quadratic over plain SGD's, both at their
    best grid rate. A run that never gets there counts its budget plus one step: if SGD does not, the true ratio is
    lower still; if the optimizer does not either, the ratio is 1 and the claim fails."""
    def measure(results: Mapping[str, Any]) -> float:
        seed = results[NAME]
        budget = seed.paths[QUADRATIC.name]["SGD"].losses.shape[-1]  # steps + 1
        steps = [min(seed.best(QUADRATIC, name)[1], budget) for name in (optimizer, "SGD")]
        return steps[0] / steps[1]
    return measure


def rosenbrock_gain(results: Mapping[str, Any]) -> float:
    """log10 of plain SGD's final Rosenbrock loss over momentum's, both at their best grid rate."""
    seed = results[NAME]
    return float(np.log10(seed.best(ROSENBROCK, "SGD")[2] / seed.best(ROSENBROCK, "SGD + momentum 0.9")[2]))


def train_acc(result: RunResult) -> float:
    """Eval-mode accuracy over the whole training split; 0 for a run that diverged (NaN weights)."""
    return 0.0 if result.diverged else result.evaluate("train")["acc"]


def best_scaled(results: Mapping[str, RunResult], optimizer: str) -> RunResult:
    """The optimizer's L8.b run (at this seed) with the highest training accuracy over the grid."""
    return max((results[SCALED[optimizer, lr].name] for lr in LRS), key=train_acc)


def best_acc(optimizer: str) -> Any:
    return lambda results: train_acc(best_scaled(results, optimizer))


def column_ratio(result: RunResult) -> float:
    """Mean |dw| per step of the first layer's weights from the scaled feature over those from the other one."""
    monitor = result.callback(UpdateSizeMonitor)
    return float(np.mean(monitor.series(FIRST, 0)) / np.mean(monitor.series(FIRST, 1)))


def step_ratio(optimizer: str) -> Any:
    return lambda results: column_ratio(best_scaled(results, optimizer))


SCALED_NAMES = {opt: tuple(SCALED[opt, lr].name for lr in LRS) for opt in ("SGD", "Adam")}
SCALED_SETTING = ("the project's own setting (the lessons published none): L1's tiny net on the linear task with "
                  "feature 0 multiplied by 100, 80 full-batch epochs, each optimizer at its best rate of the grid "
                  "1e-4..1")

# L8.a trains no Lightning run: ``run`` records each seed's SeedPaths in ctx.by_seed under NAME (hence runs=()).
CLAIMS = (
    *(Claim("L8.a", f"on the elongated quadratic {name} gets its loss below {THRESHOLD:g} (and keeps it there) in "
          "fewer than half the steps plain SGD needs, each at its best grid learning rate (measure: its steps over "
          "SGD's)", steps_ratio(name), runs=(), below=0.5, setting=SETTING) for name in ("SGD + momentum 0.9", "Adam")),
    Claim("L8.a", "in Rosenbrock's curved valley SGD with momentum ends far lower than plain SGD in 2000 steps, each at "
          "its best grid learning rate (measure: log10 of SGD's final loss over momentum's; 2 = 100x lower)",
          rosenbrock_gain, runs=(), above=2.0, setting=SETTING),
    Claim("L8.b", "with one input feature 100x larger, Adam at its best grid rate fits at least 95% of the training "
          "points in 80 epochs (measure: its eval-mode training accuracy)", best_acc("Adam"),
          runs=SCALED_NAMES["Adam"], above=0.945, setting=SCALED_SETTING),
    Claim("L8.b", "with one input feature 100x larger, plain SGD at every grid rate fits fewer than 95% of the "
          "training points in 80 epochs (measure: its best eval-mode training accuracy; a diverged run counts 0)", best_acc("SGD"), runs=SCALED_NAMES["SGD"], below=0.945, setting=SCALED_SETTING),
    Claim("L8.b", "SGD's step follows the gradient: per step it moves the first-layer weights of the large feature "
          "more than those of the small one (measure: the ratio of their mean |dw| per step, at its best rate)",
          step_ratio("SGD"), runs=SCALED_NAMES["SGD"], above=1.0, setting=SCALED_SETTING),
    Claim("L8.b", "Adam's does the opposite, as the notes say: the weights with the small gradients take the bigger "
          "steps (measure: the same ratio)", step_ratio("Adam"), runs=SCALED_NAMES["Adam"], below=1.0,
          setting=SCALED_SETTING),
    *optimizers_moons.CLAIMS,
)


def run(ctx: LessonContext) -> None:
    seeds = ctx.seeds_for()
    surfaces = (QUADRATIC, ROSENBROCK)
    paths = {s.name: {opt: trajectories(s, opt, LRS, starts_for(s, seeds, JITTER), steps(ctx, s)) for opt in OPTIMIZERS}
             for s in surfaces}
    per_seed = [SeedPaths({s: {opt: seed_slice(p, i) for opt, p in by_opt.items()} for s, by_opt in paths.items()})
                for i in range(len(seeds))]
    for seed, result in zip(seeds, per_seed):
        ctx.by_seed.setdefault(seed, {})[NAME] = result
    for surface in surfaces:
        for optimizer in OPTIMIZERS:
            best = [result.best(surface, optimizer) for result in per_seed]
            ctx.report.add(f"L8.a {surface.name}, {steps(ctx, surface)} steps", optimizer,
                           best_lr=[b[0] for b in best], steps_to_threshold=[b[1] for b in best],
                           final_loss=[b[2] for b in best],
                           reached=f"{sum(np.isfinite(b[1]) for b in best)} of {len(best)} seeds")
    ctx.figure(trajectories_figure(surfaces, per_seed[0], seeds[0]), "l8a_trajectories")
    ctx.figure(losses_figure(surfaces, per_seed), "l8a_loss_by_step")
    ctx.report.add_key(**{f"L8.a quadratic: steps to {THRESHOLD:g}, {opt} over SGD's": [steps_ratio(opt)({NAME: r})
                                                                                     for r in per_seed]
                          for opt in OPTIMIZERS if opt != "SGD"})
    ctx.report.notes.append("L8.a: torch optimizers stepping a 2-element parameter directly (no Lightning run); "
                            "inf steps = the threshold was not reached within the budget.")
    scaled_part(ctx)
    optimizers_moons.moons_part(ctx)


def scaled_part(ctx: LessonContext) -> None:
    """L8.b: SGD and Adam at every grid rate on the stretched task; accuracy by rate, and the step per column."""
    runs = {key: ctx.run(run, [UpdateSizeMonitor()]) for key, run in SCALED.items()}
    by_seed = [ctx.by_seed[seed] for seed in next(iter(runs.values())).seeds]  # {run name: result} per seed
    for opt in ("SGD", "Adam"):
        for lr in LRS:
            seeds = runs[opt, lr]
            ctx.report.add("L8.b training accuracy by learning rate (feature 0 x 100)", f"{opt} lr {lr:.2g}",
                           train_acc=seeds.each(train_acc),
                           diverged=f"{sum(r.diverged for r in seeds.results)} of {len(seeds.results)} seeds")
        best = [best_scaled(results, opt) for results in by_seed]
        ctx.report.add("L8.b at each seed's best rate", opt, train_acc=[train_acc(r) for r in best],
                       step_ratio_large_over_small=[column_ratio(r) for r in best],
                       best_lr=", ".join(sorted({r.name.rpartition("_lr")[2] for r in best})))
    ctx.figure(sweep_figure(runs), "l8b_accuracy_by_rate")
    ctx.figure(steps_figure(by_seed), "l8b_step_per_feature")


def sweep_figure(runs: Mapping[tuple[str, float], Any]) -> Figure:
    return sweep_plot(LRS, {opt: [runs[opt, lr].each(train_acc) for lr in LRS] for opt in ("SGD", "Adam")},
                      "L8.b feature 0 x 100: accuracy after 80 epochs", "learning rate",
                      "training accuracy (eval mode; diverged = 0)", log_x=True)


def steps_figure(by_seed: list[Mapping[str, RunResult]]) -> Figure:
    panels = {}
    for opt in ("SGD", "Adam"):
        best = [best_scaled(results, opt) for results in by_seed]
        panels[f"{opt} at its best rate"] = {
            f"weights from feature {j}{' (x 100)' if j == 0 else ''}": [r.callback(UpdateSizeMonitor).series(FIRST, j)
                                                                      for r in best] for j in (0, 1)}
    return lines_figure(panels, "L8.b how far each step moves the first layer's weights, by input feature",
                        ylabel="mean |dw| per step", log_y=True)


def steps(ctx: LessonContext, surface: Surface) -> int:
    return max(10, STEPS[surface.name] // 10) if ctx.fast else STEPS[surface.name]


def seed_slice(paths: Paths, i: int) -> Paths:
    return Paths(paths.optimizer, paths.lrs, paths.points[i:i + 1], paths.losses[i:i + 1])


def trajectories_figure(surfaces: tuple[Surface, ...], result: SeedPaths, seed: int) -> Figure:
    """Each surface's contours with every optimizer's path from seed ``seed``'s start, at its best grid rate."""
    fig = new_figure(6.0 * len(surfaces), 4.6)
    for ax, surface in zip(fig.subplots(1, len(surfaces)), surfaces):
        x0, x1, y0, y1 = surface.extent
        xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        zs = surface.loss(torch.from_numpy(np.stack([xs, ys], -1))).numpy()
        ax.contour(xs, ys, zs, levels=np.logspace(-3, np.log10(zs.max()), 14), norm=LogNorm(), cmap="Greys",
                   linewidths=0.6)
        for optimizer in OPTIMIZERS:
            lr, n, _ = result.best(surface, optimizer)
            paths = result.paths[surface.name][optimizer]
            points = paths.points[0, paths.lrs.index(lr)]
            reached = f"{n:.0f} steps" if np.isfinite(n) else "not reached"
            ax.plot(points[:, 0], points[:, 1], marker=".", markersize=2, linewidth=1,
                    label=f"{optimizer} (lr {lr:.2g}): {reached}")
        ax.plot(*points[0], "ko", markersize=5)
        ax.plot(*surface.minimum, "k*", markersize=10)
        ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x (first parameter)", ylabel="y (second parameter)",
               title=f"{surface.name}\nstart o, minimum *, steps to loss < {THRESHOLD:g}")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"L8.a optimizer paths from the same start (seed {seed}), each at its best learning rate")
    caption(fig, set())
    return fig


def losses_figure(surfaces: tuple[Surface, ...], per_seed: list[SeedPaths]) -> Figure:
    """Loss against step, every optimizer at each seed's best grid rate: mean over seeds with a band."""
    fig = new_figure(5.5 * len(surfaces), 3.9)
    for ax, surface in zip(fig.subplots(1, len(surfaces)), surfaces):
        for optimizer in OPTIMIZERS:
            curves = []
            for result in per_seed:
                paths = result.paths[surface.name][optimizer]
                curves.append(paths.losses[0, paths.lrs.index(result.best(surface, optimizer)[0])])
            curves = np.asarray(curves)
            steps_axis = np.arange(curves.shape[1])
            (line,) = ax.plot(steps_axis, np.exp(np.log(curves).mean(axis=0)), label=optimizer)
            if len(curves) > 1:  # losses span 20 decades: a t-interval of their mean would say nothing
                ax.fill_between(steps_axis, curves.min(axis=0), curves.max(axis=0), color=line.get_color(),
                                alpha=0.2, linewidth=0)
        ax.axhline(THRESHOLD, color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="optimizer step", ylabel="loss", yscale="log", title=surface.name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"L8.a loss by step at each optimizer's best learning rate (dashed: {THRESHOLD:g})")
    fig.supxlabel(f"line: geometric mean over {len(per_seed)} seeds' starts; band: lowest to highest seed"
                  if len(per_seed) > 1 else "one seed", fontsize=8, color="dimgrey")
    return fig
