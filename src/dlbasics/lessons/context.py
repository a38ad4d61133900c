"""What a lesson gets to work with: its folder, seeds, budget, and where its figures, numbers and claims go."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from matplotlib.figure import Figure

from dlbasics.checks import check_int
from dlbasics.figures import save_figure
from dlbasics.lessons.claims import Claim, ClaimResult, evaluate
from dlbasics.lessons.markdown import cell
from dlbasics.lessons.runner import Run, RunResult, SeedRuns, run_seeds
from dlbasics.lessons.stats import INTERVAL, Estimate, estimate

DEFAULT_SEEDS = 5
Number = float | Sequence[float] | str  # a value, one value per seed (shown as mean [95% interval]), or text


@dataclass
class Report:
    """A lesson's numbers: ``tables[exercise][variant][metric]``, plus the few ``key`` numbers for the overview.

    A number given per seed (a list) is kept as an ``Estimate``: its mean and 95% interval across the seeds.
    """

    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    key: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    text: str = ""  # preformatted text (e.g. the backprop table), shown in summary.md

    def add(self, exercise: str, variant: str, **metrics: Number) -> None:
        row = self.tables.setdefault(exercise, {}).setdefault(variant, {})
        row.update({name: as_estimate(value) for name, value in metrics.items()})

    def add_key(self, **numbers: Number) -> None:
        self.key.update({name: as_estimate(value) for name, value in numbers.items()})


def as_estimate(value: Number) -> Any:
    if isinstance(value, (str, int, float)):
        return value
    return estimate(list(value))


class LessonContext:
    """A lesson's run folder ``<out>/lesson_<name>/version_N`` (a new N each time: nothing is overwritten).

    Args:
        name: the lesson's name.
        out: the folder holding all lessons' folders (``lightning_logs`` by default).
        seed: the first seed; the runs use seeds ``seed, seed + 1, ...``. Within a seed every variant starts from
            the same seed, so same architectures start from the same weights.
        seeds: how many seeds each run gets; None: each run's ``default_seeds``, else ``DEFAULT_SEEDS``.
        fast: shrink every budget for a quick look (and for tests).
        accelerator: Lightning accelerator of the runs.
        data_dir: folder of downloaded data sets (MNIST).
    """

    def __init__(self, name: str, out: Path, seed: int = 0, seeds: int | None = None, fast: bool = False,
                 accelerator: str = "cpu", data_dir: Path = Path("data")) -> None:
        self.name, self.seed, self.fast = name, seed, fast
        self.n_seeds = None if seeds is None else check_int(seeds, "seeds")
        self.accelerator, self.data_dir = accelerator, data_dir
        self.dir = next_version(Path(out) / f"lesson_{name}")
        self.report = Report()
        self.figures: list[Path] = []
        self.drawn: dict[str, Figure] = {}  # the figures it drew, by file name stem: a notebook shows them inline
        self.figure_titles: dict[str, str] = {}  # by file name: the report page's alt text and caption
        self.by_seed: dict[int, dict[str, RunResult]] = {}  # every run's result, by seed and run name
        self.claims: list[ClaimResult] = []

    def seeds_for(self, run: Run | None = None) -> list[int]:
        """The seeds of ``run``, or of a part of the lesson that trains no Lightning run (``None``)."""
        count = self.n_seeds or (run.default_seeds if run is not None else None) or DEFAULT_SEEDS
        return list(range(self.seed, self.seed + count))

    def run(self, run: Run, callbacks: Sequence[Callback] = ()) -> SeedRuns:
        """Fit (and test) ``run`` at each of its seeds, with the lesson's budget and accelerator, plus fresh copies
        of the lesson's ``callbacks`` for each seed."""
        runs = run_seeds(run, self.dir, self.seeds_for(run), callbacks, fast=self.fast,
                         accelerator=self.accelerator, data_dir=self.data_dir)
        for seed, result in zip(runs.seeds, runs.results):
            self.by_seed.setdefault(seed, {})[run.name] = result
        return runs

    def check_claims(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        """Measure the lesson's claims on its runs, at every seed."""
        self.claims = evaluate(claims, self.by_seed)
        return self.claims

    def figure(self, fig: Figure, filename: str) -> Path:
        """Save a comparison figure as ``figures/<filename>.png`` in the lesson folder."""
        path = save_figure(fig, self.dir / "figures" / f"{filename}.png")
        self.figures.append(path)
        self.drawn[path.stem] = fig
        self.figure_titles[path.name] = figure_title(fig) or path.stem
        return path

    def adopt(self, result: RunResult, prefix: str, filename: str) -> Path | None:
        """Copy the newest figure a run's callback saved (``figures/<prefix>*.png``) into the lesson's figures."""
        found = sorted((result.log_dir / "figures").glob(f"{prefix}*.png"), key=lambda p: p.stat().st_mtime)
        if not found:
            return None
        path = self.dir / "figures" / f"{filename}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found[-1], path)
        self.figures.append(path)
        self.figure_titles[path.name] = f"{path.stem.replace('_', ' ')} (as the run's {prefix} callback drew it)"
        return path

    def seeds_text(self) -> str:
        counts = sorted({len(runs) for runs in _runs_per_name(self.by_seed).values()})
        seeds = "/".join(map(str, counts)) or "0"
        return f"seeds {seeds} per run, from seed {self.seed}"

    def command(self) -> str:
        """The ``dlbasics lesson`` command that reruns this lesson with its settings (defaults left out)."""
        parts = ["dlbasics", "lesson", self.name]
        if self.n_seeds is not None:
            parts += ["--seeds", str(self.n_seeds)]
        if self.seed != 0:
            parts += ["--seed", str(self.seed)]
        if self.fast:
            parts.append("--fast")
        if self.accelerator != "cpu":
            parts += ["--accelerator", self.accelerator]
        if Path(self.data_dir) != Path("data"):
            parts += ["--data-dir", str(self.data_dir)]
        return shlex.join(parts)

    def write_summary(self, title: str, seconds: float) -> None:
        """Write ``summary.json`` (every number, and what the report page shows) and ``summary.md`` (the same as
        tables) in the lesson folder."""
        report = self.report
        data: dict[str, Any] = {
            "lesson": self.name, "title": title, "seed": self.seed, "fast": self.fast,
            "seeds": {name: seeds for name, seeds in _runs_per_name(self.by_seed).items()},
            "seeds_text": self.seeds_text(), "command": self.command(),
            "interval": INTERVAL, "seconds": round(seconds, 2), "claims": [c.as_dict() for c in self.claims],
            "key": {k: plain(v) for k, v in report.key.items()},
            "tables": {ex: {var: {m: plain(v) for m, v in row.items()} for var, row in rows.items()}
                       for ex, rows in report.tables.items()},
            "notes": report.notes, "text": report.text, "figures": [p.name for p in self.figures],
            "figure_titles": {p.name: self.figure_titles.get(p.name, p.stem) for p in self.figures}}
        (self.dir / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        lines = [f"# {title}", "", (f"{self.seeds_text()}{' (fast budget)' if self.fast else ''}, "
                                    f"{seconds:.1f} s; TensorBoard: `tensorboard --logdir {self.dir}`"), "",
                 f"Numbers given per seed are shown as mean [{INTERVAL}].", ""]
        if self.claims:
            lines += ["## Claims", "", "| claim | setting | holds | k of N | mean [95% interval] | condition |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {cell(c.claim.code)}: {cell(c.claim.text)} | {cell(c.claim.setting)} | {c.verdict()} | "
                      f"{c.k} of {c.n} | {c.estimate} | {cell(c.claim.condition)} |" for c in self.claims]
            lines.append("")
        lines += ["## Key numbers", "", *[f"- {k}: {fmt(v)}" for k, v in report.key.items()], ""]
        for exercise, rows in report.tables.items():
            columns = list(dict.fromkeys(c for row in rows.values() for c in row))
            lines += [f"## {exercise}", "", "| variant | " + " | ".join(columns) + " |",
                      "|---" * (len(columns) + 1) + "|"]
            lines += [f"| {cell(variant)} | " + " | ".join(cell(fmt(row.get(c, ""))) for c in columns) + " |"
                      for variant, row in rows.items()]
            lines.append("")
        if report.text:
            lines += ["## Worked computation", "", "```", report.text.rstrip(), "```", ""]
        if report.notes:
            lines += ["## Notes", "", *[f"- {note}" for note in report.notes], ""]
        lines += ["## Figures", "", *[f"![{p.stem}](figures/{p.name})" for p in self.figures], ""]
        (self.dir / "summary.md").write_text("\n".join(lines))


def figure_title(fig: Figure) -> str:
    """The figure's title as a reader sees it: its suptitle, else its panels' titles (newlines as spaces)."""
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""  # get_suptitle(): matplotlib >= 3.8
    titles = [suptitle] if suptitle else [ax.get_title() for ax in fig.axes if ax.get_title()]
    return " ".join("; ".join(titles).split())


def _runs_per_name(by_seed: dict[int, dict[str, RunResult]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for seed, runs in by_seed.items():
        for name in runs:
            out.setdefault(name, []).append(seed)
    return out


def plain(value: Any) -> Any:
    return value.as_dict() if isinstance(value, Estimate) else value


def next_version(folder: Path) -> Path:
    """``folder/version_N`` with N one past the highest existing one, created."""
    versions = [int(m.group(1)) for p in folder.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    path = folder / f"version_{max(versions, default=-1) + 1}"
    path.mkdir(parents=True)
    return path


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits for tables; an estimate as ``mean [low, high]``; other values as they are."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
