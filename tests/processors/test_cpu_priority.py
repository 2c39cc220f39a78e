"""The workers' CPU priorities (the guard worker's lower, the metering worker's higher): the
nice value, and the autogroup's when the process leads its own session (each run in a child
process: a nice value cannot be raised back)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

CHILD = """
import os, sys
import orjson
from pathlib import Path
from processors.cpu_priority import change_cpu_priority
if sys.argv[3] == "unprivileged":
    os.setuid(65534)  # nobody
before = os.nice(0)
said = change_cpu_priority(int(sys.argv[1]), Path(sys.argv[2]))
own = Path("/proc/self/autogroup")
print(orjson.dumps({"before": before, "after": os.nice(0), "said": said,
    "own_group": own.read_text() if own.exists() else None}).decode())
"""


def _child(
    nice: int, autogroup: Path, *, own_session: bool, privileged: bool = True
) -> dict[str, object]:
    who = "privileged" if privileged else "unprivileged"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(nice), str(autogroup), who],
        capture_output=True,
        check=True,
        start_new_session=own_session,
        cwd=Path(__file__).parents[2],
    )
    return dict(orjson.loads(done.stdout))


def test_a_session_leader_lowers_its_nice_and_its_autogroup(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    seen = _child(10, group, own_session=True)
    assert seen["after"] == min(19, int(seen["before"]) + 10)  # type: ignore[call-overload]
    assert group.read_text() == str(seen["after"])
    assert "autogroup nice" in str(seen["said"])


def test_a_process_sharing_its_session_leaves_the_group_alone(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    seen = _child(10, group, own_session=False)
    assert seen["after"] == min(19, int(seen["before"]) + 10)  # type: ignore[call-overload]
    assert group.read_text() == "/autogroup-1 nice 0\n"  # the shell's session keeps its share


def test_zero_changes_nothing(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    seen = _child(0, group, own_session=True)
    assert seen["after"] == seen["before"]
    assert group.read_text() == "/autogroup-1 nice 0\n"


@pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="the kernel has no autogroups"
)
def test_the_kernel_takes_the_autogroup_nice() -> None:
    seen = _child(10, Path("/proc/self/autogroup"), own_session=True)
    assert str(seen["own_group"]).split()[-1] == str(seen["after"])


ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="raising a priority needs root")


@ROOT
def test_a_session_leader_raises_its_nice_and_its_autogroup(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    group.chmod(0o666)
    seen = _child(-5, group, own_session=True)
    assert seen["after"] == max(-20, int(seen["before"]) - 5)  # type: ignore[call-overload]
    assert group.read_text() == str(seen["after"])


@ROOT
def test_without_the_privilege_the_priority_stays_and_the_log_says_why(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    group.chmod(0o666)
    seen = _child(-5, group, own_session=True, privileged=False)
    assert seen["after"] == seen["before"]
    assert "CAP_SYS_NICE" in str(seen["said"]) and "processors.cpu_nice: 0" in str(seen["said"])
    assert group.read_text() == "/autogroup-1 nice 0\n"
