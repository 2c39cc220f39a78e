"""Lowers this process's CPU priority, so analysis that can wait yields to what cannot.

A plain ``nice`` value only counts among the processes of one scheduling group. With
Linux's autogroups (``kernel.sched_autogroup_enabled=1``, the default on desktops and on
these machines) every session is its own group, and the scheduler shares the CPU fairly
between groups whatever their members' nice values say: a niced worker started in its own
session (as ``tollgate up`` starts each stage) keeps its full share. So a session leader
also sets its group's nice, in ``/proc/self/autogroup``. A process that does not lead its
session leaves the group alone: its nice value would lower every process of the session.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def lower_cpu_priority(nice: int, autogroup: Path = AUTOGROUP) -> str:
    """Adds ``nice`` to this process's nice value (and its autogroup's, if it leads its
    session); say what was done, for the log. Call it before threads are started: on
    Linux a nice value is per thread, and new threads inherit it."""
    if nice <= 0:
        return "CPU priority unchanged"
    value = os.nice(nice)
    if os.getsid(0) != os.getpid() or not autogroup.exists():
        return f"nice {value}"
    try:
        autogroup.write_text(str(min(19, value)))
    except OSError as exc:  # no autogroup support, or not allowed: the nice value stays
        return f"nice {value} (autogroup unchanged: {exc.strerror})"
    return f"nice {value}, autogroup nice {min(19, value)}"
