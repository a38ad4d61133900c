"""The suite's isolation: no test leaves process environment behind for the tests after it.

The two tests run in file order: the first changes ``os.environ`` the way Lightning's DDP launcher does, the second
checks that ``conftest.restore_environment`` undid it. A leaked ``LOCAL_RANK`` once made every later two-process
``dlbasics`` run hang (rank 0 waited for a rank 1 that Lightning thought someone else had started).
"""

import os

from reliability_probes import LAUNCHER_VARIABLES, child_environment

PROBE = "DLBASICS_ISOLATION_PROBE"


def test_a_writes_launcher_variables_like_lightning_does():
    os.environ[PROBE] = "leaked"
    os.environ["LOCAL_RANK"] = "0"


def test_b_sees_none_of_them():
    assert PROBE not in os.environ
    assert "LOCAL_RANK" not in os.environ


def test_subprocesses_never_inherit_launcher_variables(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.setenv(name, "0")
    env = child_environment()
    assert not set(LAUNCHER_VARIABLES) & set(env)
    assert env["PYTHONPATH"].split(os.pathsep)[0].endswith("tests")
