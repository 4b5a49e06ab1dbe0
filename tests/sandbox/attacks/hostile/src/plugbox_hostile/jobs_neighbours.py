"""Under ``plugbox serve``: a run of eve reaching for a concurrent run of another plugin (mallory).

``aggressor`` looks for every process it can name and tries to slow it down, pin it, starve its
I/O and cut its limits, and to take or reach the other plugin's socket names; it reports how
many of those succeeded. ``mallory:neighbour`` (in ``mallory.py``) runs at the same time and
reports its own priority, policy, CPUs and I/O class at its end.
"""

from __future__ import annotations

import ctypes
import os
import socket
import time
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

_LIBC = ctypes.CDLL(None, use_errno=True)
_IOPRIO_WHO_PROCESS, _IOPRIO_WHO_USER = 1, 3
_IOPRIO_IDLE = 3 << 13
_SYS_IOPRIO_SET = 251  # x86_64


def _check(result: int) -> int:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _visible() -> list[int]:
    found = []
    for pid in range(2, 1 << 16):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        if pid != os.getpid():
            found.append(pid)
    return found


def _harm(pid: int) -> dict[str, dict[str, Any]]:
    limit = (ctypes.c_uint64 * 2)(4, 4)
    return {
        "renice": attempt(os.setpriority, os.PRIO_PROCESS, pid, 19),
        "pin": attempt(os.sched_setaffinity, pid, {0}),
        "idle_policy": attempt(os.sched_setscheduler, pid, os.SCHED_IDLE, os.sched_param(0)),
        "ioprio_idle": attempt(
            lambda: _check(_LIBC.syscall(_SYS_IOPRIO_SET, _IOPRIO_WHO_PROCESS, pid, _IOPRIO_IDLE))
        ),
        "prlimit_nofile": attempt(lambda: _check(_LIBC.prlimit(pid, 7, limit, None))),
    }


def _bind_abstract(name: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(b"\0" + name)


def _connect(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)


@job("aggressor", schedule="@daily", timeout="30s", permissions=perms.Permissions())
def aggressor(ctx: JobContext) -> dict[str, Any]:
    end = time.monotonic() + 2.0
    scans, seen, harmed = 0, set(), {}
    while time.monotonic() < end:
        scans += 1
        for pid in _visible():
            seen.add(pid)
            for name, outcome in _harm(pid).items():
                if outcome["ok"]:
                    harmed[f"{name}:{pid}"] = outcome
    everyone = {
        "renice_my_uid": attempt(os.setpriority, os.PRIO_USER, 0, 19),
        "ioprio_my_uid": attempt(
            lambda: _check(_LIBC.syscall(_SYS_IOPRIO_SET, _IOPRIO_WHO_USER, 0, _IOPRIO_IDLE))
        ),
    }
    return report(
        {"scans": scans, "seen": sorted(seen)[:50], "pid": os.getpid()},
        harm_others={"ok": bool(harmed), "errno": None, "error": repr(harmed)[:500]},
        bind_neighbours_name=attempt(_bind_abstract, b"plugbox-mallory-lock"),
        connect_neighbours_socket=attempt(_connect, ".plugbox/mallory/neighbour.sock"),
        **everyone,
    )


JOBS = [aggressor]
