"""Seeing other processes: which pids exist for a run, and whether any of them answers."""

from __future__ import annotations

import errno
import os
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report


def _probe(limit: int) -> dict[str, list[int]]:
    """Every pid up to ``limit`` that exists (kill(pid, 0) says so), and those it may signal."""
    exists, signalable = [], []
    for pid in range(1, limit):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            exists.append(pid)
            continue
        exists.append(pid)
        signalable.append(pid)
    return {"exists": exists, "signalable": signalable}


def _target() -> int | None:
    """A process of the host user, its pid put where the job can read it (the suite's `target`;
    none under serve)."""
    try:
        with open(".plugbox/eve/target.pid") as named:
            return int(named.read())
    except FileNotFoundError:
        return None


@job("pid-scan", schedule="@daily", timeout="30s",
     permissions=perms.presets.plugin_workspace("eve"))  # fmt: skip
def pid_scan(ctx: JobContext) -> dict[str, Any]:
    seen = _probe(1 << 16)  # pid_max is 32768 by default
    target = _target()
    host = {"kill_host": attempt(os.kill, target, 0)} if target is not None else {}
    return report(
        {"pid": os.getpid(), "ppid": os.getppid(), "target": target, **seen},
        **host,
        kill_parent=attempt(os.kill, os.getppid(), 0)
        if os.getppid()
        else {"ok": False, "errno": errno.ESRCH, "error": "no parent in this namespace"},
        list_proc=attempt(os.listdir, "/proc"),
    )


JOBS = [pid_scan]
