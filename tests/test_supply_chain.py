"""The dependency bounds keep out the compromised lightning releases 2.6.2 and 2.6.3."""

import sys
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from reliability_probes import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

COMPROMISED = ("2.6.2", "2.6.3")  # lightning releases


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(line) for line in project["dependencies"]]
    return {requirement.name: requirement for requirement in found}


def test_lightning_bounds_exclude_the_compromised_releases_and_admit_later_ones():
    specifier = requirements()["lightning"].specifier
    for bad in COMPROMISED:
        assert not specifier.contains(bad, prereleases=True), bad
    for good in ("2.6.4", "2.6.10", "2.7.0"):
        assert specifier.contains(good), good


def test_the_installed_lightning_is_not_a_compromised_release():
    installed = Version(version("lightning"))
    assert str(installed) not in COMPROMISED
    assert requirements()["lightning"].specifier.contains(installed, prereleases=True)
