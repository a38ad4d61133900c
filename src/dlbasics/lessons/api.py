"""Lessons from a notebook: run a lesson as ``dlbasics lesson`` does and get its claims, tables and figures back.

    from dlbasics.lessons import run_lesson

    result = run_lesson("dropout", seeds=5, fast=True)
    result.claims[0]                  # code, text, holds, k of n seeds, mean and 95% interval of its measure
    result.tables["L4.d dropout rate sweep"]  # {variant: {metric: value or Estimate}}
    result.figures["l4d_sweep"]       # a matplotlib Figure: a notebook shows it inline
    result                            # in a notebook: the lesson's section of the report page

It writes the same files as the command (``<out>/lesson_<name>/version_N/`` and ``<out>/index.html``) through the
same code (``dlbasics lesson`` calls ``run_lessons``), and leaves the process's warning filters and logger levels as
it found them: the command's quieting of Lightning lasts only while the lessons run.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from dlbasics.checks import check_choice, check_int
from dlbasics.lessons import LESSONS, Lesson


@dataclass(frozen=True)
class LessonClaim:
    """One claim of a lesson, measured at every seed (the ``claims`` entries of ``summary.json``).

    ``holds`` when its condition is met in at least 80% of the ``n`` seeds (``k`` of them); ``interval`` is the 95%
    Student-t interval of the measure's mean over the seeds (None with one seed).
    """

    code: str
    text: str
    setting: str
    condition: str
    shows_it: bool
    holds: bool
    k: int
    n: int
    mean: float
    interval: tuple[float, float] | None
    values: tuple[float, ...]

    @classmethod
    def from_summary(cls, claim: dict[str, Any]) -> LessonClaim:
        interval = None if claim["low"] is None else (claim["low"], claim["high"])
        return cls(claim["code"], claim["text"], claim["setting"], claim["condition"], claim["shows_it"],
                   claim["holds"], claim["k"], claim["n"], claim["mean"], interval, tuple(claim["values"]))

    @property
    def verdict(self) -> str:
        return "holds" if self.holds else "does not hold"

    @property
    def measure(self) -> str:
        """``mean [low, high]`` (the mean alone with one seed), as the summaries print it."""
        from dlbasics.lessons.stats import Estimate

        low, high = self.interval or (None, None)
        return str(Estimate(self.values, self.mean, low, high))


@dataclass(repr=False)
class LessonResult:
    """What a lesson run left: its claims, numbers and figures, and where its files are.

    Attributes:
        name: the lesson's command name (``dropout``).
        code: its code in the catalogue (``L4``).
        title: its title.
        folder: its run folder, ``<out>/lesson_<name>/version_N``, with summary.md, summary.json and figures/.
        page: the report page of all lessons in ``<out>``, updated with this one.
        seconds: how long it ran.
        seeds_text: how many seeds each run had, from which seed.
        command: the ``dlbasics lesson`` command that reruns it.
        claims: its claims, measured at every seed.
        key: its key numbers, ``{name: value}``.
        tables: ``{exercise: {variant: {metric: value}}}``; a number given per seed is an ``Estimate`` (mean, 95%
            interval, per-seed values).
        notes: its notes.
        figures: ``{file name stem: Figure}``, in the order drawn; a figure a run's callback drew (the lesson
            copied its PNG) is redrawn from that PNG.
    """

    name: str
    code: str
    title: str
    folder: Path
    page: Path
    seconds: float
    seeds_text: str
    command: str
    claims: list[LessonClaim]
    key: dict[str, Any]
    tables: dict[str, dict[str, dict[str, Any]]]
    notes: list[str]
    figures: dict[str, Figure]

    def __repr__(self) -> str:
        held = sum(claim.holds for claim in self.claims)
        return (f"LessonResult({self.code} {self.title}: {held} of {len(self.claims)} claims hold, "
                f"{len(self.figures)} figures, folder={str(self.folder)!r})")

    def _repr_html_(self) -> str:
        """A notebook's rich view: the lesson's section of the report page, with its figures inline."""
        from dlbasics.lessons.report_page import STYLE, data_uri, lesson_section

        summary = json.loads((self.folder / "summary.json").read_text())
        section = lesson_section(summary, self.folder, data_uri)
        return f"<div class='dlbasics-lesson'><style>{STYLE}</style>{section}</div>"


def run_lesson(name: str, seeds: int | None = None, fast: bool = False, out: str | Path = "lightning_logs",
               seed: int = 0, accelerator: str = "cpu", data_dir: str | Path = "data") -> LessonResult:
    """Run one lesson of the catalogue, as ``dlbasics lesson NAME`` does.

    Args:
        name: the lesson's name (``dlbasics lesson --list``): ``activations``, ``dropout``, ...
        seeds: seeds per run; each claim reports in how many of them it holds and its 95% interval. None: the
            lesson's defaults (5, and 1 for the MNIST runs).
        fast: a tenth of each budget, for a quick look.
        out: folder of the lessons' folders and of the report page ``index.html``.
        seed: first seed: the runs use seeds ``seed, seed + 1, ...``.
        accelerator: Lightning accelerator of the runs (``cpu``, ``gpu``, ``mps``, ``auto``).
        data_dir: data sets folder (MNIST).

    Raises:
        ValueError: for an unknown lesson name, or a bad setting (``seeds`` below 1, ...), before anything runs.
    """
    if name == "all":
        raise ValueError("run_lesson runs one lesson; run_lessons('all') runs them all")
    (result,) = run_lessons([check_choice(name, "lesson", list(LESSONS))], seeds, fast, out, seed, accelerator,
                            data_dir)
    return result


def run_lessons(names: str | Sequence[str], seeds: int | None = None, fast: bool = False,
                out: str | Path = "lightning_logs", seed: int = 0, accelerator: str = "cpu",
                data_dir: str | Path = "data") -> list[LessonResult]:
    """Run lessons one after the other, as ``dlbasics lesson NAME...`` does (it calls this).

    Args:
        names: lesson names, or ``"all"`` for every lesson of the catalogue.
        seeds, fast, out, seed, accelerator, data_dir: as for ``run_lesson``.

    Raises:
        ValueError: for an unknown lesson name, or a bad setting, before anything runs.
    """
    lessons = check_lessons(names)
    if seeds is not None:
        check_int(seeds, "seeds")
    check_int(seed, "seed", minimum=0)
    if not isinstance(fast, bool):
        raise ValueError(f"fast {fast!r} must be True or False")
    if not isinstance(accelerator, str) or not accelerator:
        raise ValueError(f"accelerator {accelerator!r} must be a Lightning accelerator name such as 'cpu'")
    # Loaded before the process state is saved: what Lightning sets up on import stays, as any import's would.
    modules = {lesson.name: lesson.load() for lesson in lessons}
    settings = {"seed": seed, "seeds": seeds, "fast": fast, "accelerator": accelerator, "data_dir": Path(data_dir)}
    with lessons_quieted():
        return [run_one(lesson, modules[lesson.name], Path(out), settings) for lesson in lessons]


def check_lessons(names: str | Sequence[str]) -> list[Lesson]:
    """The lessons ``names`` asks for (``"all"``: every one), or a ValueError naming the unknown one."""
    names = [names] if isinstance(names, str) else list(names)
    if names == ["all"]:
        names = list(LESSONS)
    if not names:
        raise ValueError(f"no lesson named; choose from: {', '.join(LESSONS)}, all")
    return [LESSONS[check_choice(name, "lesson", list(LESSONS))] for name in names]


def run_one(lesson: Lesson, module: Any, out: Path, settings: dict[str, Any]) -> LessonResult:
    """Run one lesson (``settings``: ``LessonContext``'s), write its summary and the report page: the one
    definition of a lesson run."""
    from dlbasics.leftovers import outermost_missing
    from dlbasics.lessons.context import LessonContext
    from dlbasics.lessons.report_page import write_page

    created = outermost_missing(out / f"lesson_{lesson.name}")
    ctx = LessonContext(lesson.name, out, **settings)
    print(f"== {lesson.code} {lesson.title}: running ...", flush=True)
    start = time.perf_counter()
    try:
        module.run(ctx)
        ctx.check_claims(getattr(module, "CLAIMS", ()))
    except BaseException:
        # A lesson without its summary is half-written: nothing of it stays.
        shutil.rmtree(created or ctx.dir, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    ctx.write_summary(f"{lesson.code} {lesson.title}", seconds)
    page = write_page(out)
    print(f"   done in {seconds:.1f} s -> {ctx.dir}/summary.md", flush=True)
    figures = {path.stem: ctx.drawn[path.stem] if path.stem in ctx.drawn else png_figure(path) for path in ctx.figures}
    claims = [LessonClaim.from_summary(claim.as_dict()) for claim in ctx.claims]  # as summary.json has them
    return LessonResult(lesson.name, lesson.code, lesson.title, ctx.dir, page, seconds, ctx.seeds_text(),
                        ctx.command(), claims, dict(ctx.report.key), ctx.report.tables, list(ctx.report.notes),
                        figures)


@contextmanager
def lessons_quieted() -> Iterator[None]:
    """``quiet_lightning()`` for the block only: the warning filters and every logger's level and filters are put
    back as they were when it ends, however it ends."""
    from dlbasics.lessons.cli import quiet_lightning

    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    saved = [(logger, logger.level, list(logger.filters)) for logger in loggers]
    with warnings.catch_warnings():
        try:
            quiet_lightning()
            yield
        finally:
            for logger, level, filters in saved:
                logger.setLevel(level)
                logger.filters[:] = filters


def png_figure(path: Path) -> Figure:
    """A saved PNG as a figure of its own size, for a notebook to show like the figures a lesson draws."""
    from matplotlib.image import imread

    from dlbasics.figures import DPI, new_figure

    image = imread(path)
    fig = new_figure(image.shape[1] / DPI, image.shape[0] / DPI, layout="none")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()
    return fig
