"""The suite's isolation: no test leaves process environment behind for the tests after it.

Every test runs inside ``conftest.saved_environment`` (the autouse ``restore_environment`` fixture). A leaked
``LOCAL_RANK`` once made every later two-process ``dlbasics`` run hang (rank 0 waited for a rank 1 that Lightning
thought someone else had started). Each test here stands alone: none depends on another's side effects or order.
"""

import os

from conftest import saved_environment
from reliability_probes import LAUNCHER_VARIABLES, child_environment

PROBE = "DLBASICS_ISOLATION_PROBE"


def test_what_a_test_writes_to_the_environment_is_undone_when_it_ends(monkeypatch):
    monkeypatch.delenv(PROBE, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("DLBASICS_KEPT", "before")
    with saved_environment():
        os.environ[PROBE] = "leaked"  # the way Lightning's DDP launcher writes LOCAL_RANK, MASTER_PORT, ...
        os.environ["LOCAL_RANK"] = "0"
        del os.environ["DLBASICS_KEPT"]
    assert PROBE not in os.environ and "LOCAL_RANK" not in os.environ
    assert os.environ["DLBASICS_KEPT"] == "before"  # what the block removed is back


def test_subprocesses_never_inherit_launcher_variables(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.setenv(name, "0")
    env = child_environment()
    assert not set(LAUNCHER_VARIABLES) & set(env)
    assert env["PYTHONPATH"].split(os.pathsep)[0].endswith("tests")
