"""Lessons from a notebook: ``run_lesson`` returns a lesson's claims, tables and figures, writes what the command
writes, and leaves the process's warning filters and logger levels as they were.

One real lesson run (L12 early stopping, the fastest: about 6 s at 2 seeds and the fast budget) is shared by the
tests of this module; the CLI comparison runs it once more.
"""

import json
import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import saved_environment
from matplotlib.figure import Figure

from dlbasics.callbacks import GradientFlowWarning
from dlbasics.figures import new_figure, render, save_figure
from dlbasics.lessons import LESSONS, LessonResult, run_lesson, run_lessons
from dlbasics.lessons.api import lessons_quieted, png_figure
from dlbasics.lessons.cli import lesson_main
from dlbasics.lessons.stats import Estimate

NAME = "early_stopping"
SETTINGS = {"seeds": 2, "fast": True}


def process_state() -> tuple[list, dict]:
    """The warning filters, and every logger's level and filters."""
    loggers = {"": logging.getLogger(), **{name: logger for name, logger in logging.Logger.manager.loggerDict.items()
                                           if isinstance(logger, logging.Logger)}}
    return list(warnings.filters), {name: (logger.level, list(logger.filters)) for name, logger in loggers.items()}


def unchanged(before: tuple[list, dict], after: tuple[list, dict]) -> bool:
    """The same warning filters, and every logger that existed before as it was (imports may add loggers)."""
    return after[0] == before[0] and {name: after[1][name] for name in before[1]} == before[1]


@pytest.fixture(scope="module")
def lesson_run(tmp_path_factory) -> tuple[LessonResult, tuple, tuple]:
    """The lesson run through the API, with the process state before and after it."""
    out = tmp_path_factory.mktemp("api") / "out"
    with saved_environment():  # seed_everything writes PL_GLOBAL_SEED; this fixture outlives one test's restore
        before = process_state()
        result = run_lesson(NAME, out=out, **SETTINGS)
        after = process_state()
    return result, before, after


def test_the_result_holds_the_claims_tables_and_figures_of_the_lesson(lesson_run):
    result, _, _ = lesson_run
    summary = json.loads((result.folder / "summary.json").read_text())
    assert (result.name, result.code, result.folder.parent.name) == (NAME, "L12", f"lesson_{NAME}")
    assert [c.code for c in result.claims] == [c.code for c in LESSONS[NAME].load().CLAIMS]
    for claim, saved in zip(result.claims, summary["claims"]):
        assert claim.n == 2 and claim.k == saved["k"] and claim.holds == saved["holds"] and len(claim.values) == 2
        low, high = claim.interval
        assert low <= claim.mean <= high and claim.measure.startswith(f"{claim.mean:.4g} [")
    assert list(result.tables) == list(summary["tables"]) and result.tables
    values = [value for rows in result.tables.values() for row in rows.values() for value in row.values()]
    assert any(isinstance(value, Estimate) for value in values)  # a per-seed number: mean, interval, values
    assert list(result.figures) == [Path(name).stem for name in summary["figures"]]
    for name, fig in result.figures.items():
        assert isinstance(fig, Figure) and fig.axes  # the lesson's own figure, not closed: a notebook draws it
        drawn = render(fig)
        assert drawn.shape[2] == 3 and drawn.std() > 0, name
    assert result.command == "dlbasics lesson early_stopping --seeds 2 --fast"
    assert result.page == result.folder.parent.parent / "index.html" and "id='lesson-early_stopping'" in \
        result.page.read_text()


def test_warning_filters_and_logger_levels_are_as_they_were(lesson_run):
    _, before, after = lesson_run
    assert unchanged(before, after)


def test_the_quieting_lasts_only_while_the_lessons_run():
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    with warnings.catch_warnings():
        # As in a fresh process, whatever earlier tests did: Lightning's logger at INFO, no lesson filter yet.
        warnings.filters[:] = [f for f in warnings.filters if f[2] is not GradientFlowWarning]
        lightning_logger.setLevel(logging.INFO)
        try:
            before = process_state()
            with lessons_quieted():
                assert lightning_logger.level == logging.WARNING
                assert any(f[2] is GradientFlowWarning and f[0] == "ignore" for f in warnings.filters)
            assert unchanged(before, process_state())
            with pytest.raises(RuntimeError), lessons_quieted():  # a lesson that fails restores them too
                raise RuntimeError("a lesson failed")
            assert unchanged(before, process_state())
        finally:
            lightning_logger.setLevel(level)


def test_a_notebook_shows_the_lesson_with_its_figures_inline(lesson_run):
    result, _, _ = lesson_run
    page = result._repr_html_()
    assert page.count("<img src='data:image/png;base64,") == len(result.figures)
    assert all(claim.code in page for claim in result.claims) and "L12 Early stopping" in page
    assert "L12 Early stopping: " in repr(result) and "claims hold" in repr(result)


def without_run_details(folder: Path) -> set[str]:
    """A lesson folder's files, relative, with the TensorBoard event file names (time, host, process) made alike."""
    return {re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents", p.relative_to(folder).as_posix())
            for p in folder.rglob("*") if p.is_file()}


def test_the_api_writes_the_same_files_as_the_command(lesson_run, tmp_path, capsys):
    result, _, _ = lesson_run
    with saved_environment():
        assert lesson_main([NAME, "--seeds", "2", "--fast", "--out", str(tmp_path)]) == 0
    (folder,) = (tmp_path / f"lesson_{NAME}").glob("version_*")
    assert without_run_details(folder) == without_run_details(result.folder)
    cli, api = (json.loads((f / "summary.json").read_text()) for f in (folder, result.folder))
    assert {k: v for k, v in cli.items() if k != "seconds"} == {k: v for k, v in api.items() if k != "seconds"}
    assert capsys.readouterr().out.rstrip().endswith(str((tmp_path / "index.html").resolve()))


@pytest.mark.parametrize("call, message", [
    (lambda out: run_lesson("dropuot", out=out), "lesson 'dropuot' is not one of: activations, backprop"),
    (lambda out: run_lesson("all", out=out), r"run_lessons\('all'\)"),
    (lambda out: run_lessons(["dropout", "nope"], out=out), "lesson 'nope' is not one of"),
    (lambda out: run_lessons([], out=out), "no lesson named"),
    (lambda out: run_lesson(NAME, seeds=0, out=out), "seeds 0 must be an integer >= 1"),
    (lambda out: run_lesson(NAME, seeds=2.5, out=out), "seeds 2.5 must be an integer >= 1"),
    (lambda out: run_lesson(NAME, seed=-1, out=out), "seed -1 must be an integer >= 0"),
    (lambda out: run_lesson(NAME, fast="yes", out=out), "fast 'yes' must be True or False"),
    (lambda out: run_lesson(NAME, accelerator="", out=out), "accelerator '' must be"),
])
def test_bad_input_is_refused_before_anything_runs(call, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_importing_the_lessons_loads_no_lightning_until_a_lesson_runs():
    code = ("import sys; import dlbasics.lessons as lessons; from dlbasics.lessons import run_lesson; "
            "assert 'lightning' not in sys.modules and 'torch' not in sys.modules, 'imported eagerly'; "
            "assert 'run_lesson' in dir(lessons)\n"
            "try:\n    lessons.nothing\nexcept AttributeError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "module 'dlbasics.lessons' has no attribute 'nothing'" in done.stdout


def test_a_figure_a_run_drew_as_a_png_comes_back_as_a_figure_of_its_size(tmp_path):
    fig = new_figure(5.0, 3.0)
    fig.add_subplot().plot([0, 1, 2], [2, 0, 1])
    path = save_figure(fig, tmp_path / "drawn.png")
    assert render(png_figure(path)).shape == render(fig).shape == (300, 500, 3)
