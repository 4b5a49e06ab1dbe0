"""Reaching other processes (issue 9, class D): limits, priority, CPUs, scheduling, I/O class.

The review set the host CLI's CPU limit to one second (it died of SIGXCPU, its run left
``running``) and lowered a foreign process's open-files limit. Targets here: a process the test
starts as the host user (its pid in ``.plugbox/eve/target.pid``), the job's parent, and pid 1.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
_RLIMIT_CPU, _RLIMIT_NOFILE, _RLIMIT_CORE = 0, 7, 4
_IOPRIO_WHO_PROCESS, _IOPRIO_IDLE = 1, 3 << 13
_NR_IOPRIO_SET, _NR_KCMP, _KCMP_VM = 251, 312, 1  # x86_64


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _prlimit(pid: int, resource: int, value: int) -> int:
    limit = (ctypes.c_uint64 * 2)(value, value)
    return _check(_LIBC.prlimit(pid, resource, limit, None))


def _syscall(number: int, *args: int) -> int:
    return _check(int(_LIBC.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))))


def _harm(pid: int) -> dict[str, dict[str, Any]]:
    return {
        "prlimit_cpu": attempt(_prlimit, pid, _RLIMIT_CPU, 1),
        "prlimit_nofile": attempt(_prlimit, pid, _RLIMIT_NOFILE, 4),
        "renice": attempt(os.setpriority, os.PRIO_PROCESS, pid, 19),
        "pin": attempt(os.sched_setaffinity, pid, {0}),
        "idle_policy": attempt(os.sched_setscheduler, pid, os.SCHED_IDLE, os.sched_param(0)),
        "sched_setparam": attempt(os.sched_setparam, pid, os.sched_param(0)),
        "ioprio_idle": attempt(_syscall, _NR_IOPRIO_SET, _IOPRIO_WHO_PROCESS, pid, _IOPRIO_IDLE),
        "kcmp": attempt(_syscall, _NR_KCMP, os.getpid(), pid, _KCMP_VM, 0, 0),
        "pidfd_open": attempt(lambda: os.close(os.pidfd_open(pid))),
    }


@job("other-processes", schedule="@daily", timeout="30s",
     permissions=perms.presets.plugin_workspace("eve"))  # fmt: skip
def other_processes(ctx: JobContext) -> dict[str, Any]:
    with open(".plugbox/eve/target.pid") as handle:
        target = int(handle.read())
    attempts: dict[str, dict[str, Any]] = {}
    for label, pid in (("target", target), ("parent", os.getppid()), ("init", 1)):
        if pid in (0, os.getpid()):
            continue  # in a pid namespace the parent is 0 and pid 1 is this run
        attempts |= {f"{name}:{label}": outcome for name, outcome in _harm(pid).items()}
    # The control: the same calls on itself (pid 0) work.
    own = {
        "setrlimit_self": attempt(_prlimit, 0, _RLIMIT_CORE, 0),
        "renice_self": attempt(os.setpriority, os.PRIO_PROCESS, 0, 1),
        "pin_self": attempt(os.sched_setaffinity, 0, os.sched_getaffinity(0)),
    }
    return report({"target": target, "pid": os.getpid(), "own": own}, **attempts)


JOBS = [other_processes]
