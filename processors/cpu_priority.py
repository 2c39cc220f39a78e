"""Moves this process's CPU priority, so the stage the admission path waits on (metering)
runs first and analysis that can wait (the guard worker's Presidio) yields.

A plain ``nice`` value only counts among the processes of one scheduling group. With
Linux's autogroups (``kernel.sched_autogroup_enabled=1``, the default on desktops and on
these machines) every session is its own group, and the scheduler shares the CPU fairly
between groups whatever their members' nice values say: a niced worker started in its own
session (as ``tollgate up`` starts each stage) keeps its full share. So a session leader
also sets its group's nice, in ``/proc/self/autogroup``. A process that does not lead its
session leaves the group alone: its nice value would move every process of the session.
Raising a priority (a negative ``nice``) needs root or ``CAP_SYS_NICE``; without it the
priority stays and the log says so.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")
NOT_PERMITTED = (
    "CPU priority unchanged: raising it needs root or CAP_SYS_NICE "
    "(set processors.cpu_nice: 0 to stop asking)"
)


def change_cpu_priority(nice: int, autogroup: Path = AUTOGROUP) -> str:
    """Adds ``nice`` to this process's nice value (and its autogroup's, if it leads its
    session); say what was done, for the log. Call it before threads are started: on
    Linux a nice value is per thread, and new threads inherit it."""
    if nice == 0:
        return "CPU priority unchanged"
    try:
        value = os.nice(nice)
    except PermissionError:
        return NOT_PERMITTED
    if os.getsid(0) != os.getpid() or not autogroup.exists():
        return f"nice {value}"
    group = max(-20, min(19, value))
    try:
        autogroup.write_text(str(group))
    except OSError as exc:  # no autogroup support, or not allowed: the nice value stays
        return f"nice {value} (autogroup unchanged: {exc.strerror})"
    return f"nice {value}, autogroup nice {group}"
