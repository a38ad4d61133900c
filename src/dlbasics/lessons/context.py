"""What a lesson gets to work with: its folder, seed, budget, and where its figures and numbers go."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from matplotlib.figure import Figure

from dlbasics.figures import save_figure
from dlbasics.lessons.runner import Run, RunResult, run_lesson_run


@dataclass
class Report:
    """A lesson's numbers: ``tables[exercise][variant][metric]``, plus the few ``key`` numbers for the overview."""

    tables: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    key: dict[str, float | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    text: str = ""  # preformatted text (e.g. the backprop table), shown in summary.md

    def add(self, exercise: str, variant: str, **metrics: float) -> None:
        self.tables.setdefault(exercise, {}).setdefault(variant, {}).update(metrics)


class LessonContext:
    """A lesson's run folder ``<out>/lesson_<name>/version_N`` (a new N each time: nothing is overwritten).

    Args:
        name: the lesson's name.
        out: the folder holding all lessons' folders (``lightning_logs`` by default).
        seed: seed of every variant (the same seed for each, so same architectures start alike).
        fast: shrink every budget for a quick look (and for tests).
        accelerator: Lightning accelerator of the runs.
        data_dir: folder of downloaded data sets (MNIST).
    """

    def __init__(self, name: str, out: Path, seed: int = 0, fast: bool = False, accelerator: str = "cpu",
                 data_dir: Path = Path("data")) -> None:
        self.name, self.seed, self.fast, self.accelerator, self.data_dir = name, seed, fast, accelerator, data_dir
        self.dir = next_version(Path(out) / f"lesson_{name}")
        self.report = Report()
        self.figures: list[Path] = []

    def run(self, run: Run, callbacks: Sequence[Callback] = ()) -> RunResult:
        """Fit (and test) ``run`` with the lesson's seed, budget and accelerator, plus the lesson's ``callbacks``."""
        return run_lesson_run(run, self.dir, self.seed, callbacks, self.fast, self.accelerator, self.data_dir)

    def figure(self, fig: Figure, filename: str) -> Path:
        """Save a comparison figure as ``figures/<filename>.png`` in the lesson folder."""
        path = save_figure(fig, self.dir / "figures" / f"{filename}.png")
        self.figures.append(path)
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
        return path

    def write_summary(self, title: str, seconds: float) -> None:
        """Write ``summary.json`` (every number) and ``summary.md`` (the same as tables) in the lesson folder."""
        report = self.report
        data: dict[str, Any] = {"lesson": self.name, "title": title, "seed": self.seed, "fast": self.fast,
                                "seconds": round(seconds, 2), "key": report.key, "tables": report.tables,
                                "notes": report.notes, "figures": [p.name for p in self.figures]}
        (self.dir / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        lines = [f"# {title}", "", f"seed {self.seed}{' (fast budget)' if self.fast else ''}, "
                 f"{seconds:.1f} s; TensorBoard: `tensorboard --logdir {self.dir}`", ""]
        lines += ["## Key numbers", "", *[f"- {k}: {fmt(v)}" for k, v in report.key.items()], ""]
        for exercise, rows in report.tables.items():
            columns = list(dict.fromkeys(c for row in rows.values() for c in row))
            lines += [f"## {exercise}", "", "| variant | " + " | ".join(columns) + " |",
                      "|---" * (len(columns) + 1) + "|"]
            lines += [f"| {variant} | " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |"
                      for variant, row in rows.items()]
            lines.append("")
        if report.text:
            lines += ["## Worked computation", "", "```", report.text.rstrip(), "```", ""]
        if report.notes:
            lines += ["## Notes", "", *[f"- {note}" for note in report.notes], ""]
        lines += ["## Figures", "", *[f"![{p.stem}](figures/{p.name})" for p in self.figures], ""]
        (self.dir / "summary.md").write_text("\n".join(lines))


def next_version(folder: Path) -> Path:
    """``folder/version_N`` with N one past the highest existing one, created."""
    versions = [int(m.group(1)) for p in folder.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    path = folder / f"version_{max(versions, default=-1) + 1}"
    path.mkdir(parents=True)
    return path


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits for tables; other values as they are."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
