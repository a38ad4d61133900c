"""The repository stands alone: its catalogue, configs and references all live inside it."""

import subprocess

from reliability_probes import ROOT

from dlbasics.lessons import LESSONS
from dlbasics.lessons.runner import CONFIGS


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.splitlines() if name.endswith((".py", ".md", ".yaml", ".toml", ".cfg"))
            or name in ("Makefile", ".ci/run")]


def test_nothing_points_outside_the_repository_for_the_lesson_catalogue():
    references = ("../shared", "shared/LESSONS", "LESSONS.md")
    offenders = [name for name in tracked_text_files() if (ROOT / name).is_file() and name != "tests/test_repository.py"
                 and any(ref in (ROOT / name).read_text() for ref in references)]
    assert offenders == []
    catalogue = (ROOT / "docs/lessons.md").read_text()
    for lesson in LESSONS.values():
        assert f"`dlbasics lesson {lesson.name}`" in catalogue, lesson.name


def test_configs_in_a_clone_are_the_packaged_configs():
    assert (ROOT / "configs").resolve() == (ROOT / "src/dlbasics/configs").resolve()
    assert CONFIGS.joinpath("moons_mlp.yaml").is_file()


def test_ci_runs_the_readme_test_command_and_the_claims_so_every_test_runs():
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert ci.index("make test") < ci.index("make test-claims")  # the README's command first, then the claims
    assert "make test " in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    # one selection and its complement: together they run every test
    assert '$(BIN)/python -m pytest -q -m "not claims"\n' in makefile
    assert "$(BIN)/python -m pytest -q -m claims\n" in makefile
