"""The guard worker's lower CPU priority: its nice value, and its autogroup's when it leads
its own session (each run in a child process: a nice value cannot be raised back)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

CHILD = """
import os, sys, orjson
from pathlib import Path
from processors.cpu_priority import lower_cpu_priority
before = os.nice(0)
said = lower_cpu_priority(int(sys.argv[1]), Path(sys.argv[2]))
own = Path("/proc/self/autogroup")
print(orjson.dumps({"before": before, "after": os.nice(0), "said": said,
    "own_group": own.read_text() if own.exists() else None}).decode())
"""


def _child(nice: int, autogroup: Path, *, own_session: bool) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(nice), str(autogroup)],
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
