"""Plugin ``mallory``: attacks that run at import time, while the host discovers plugins.

``plugbox plugins list`` imports every plugin in a confined child before any reviewer has read
its permissions. This module tries, as it is imported, what a job would try; the outcome of each
attempt travels back in a job's description (the only channel discovery has), so the test
sees both that the code ran (``control``) and what stopped it.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import time

from plugbox.sdk import JobContext, Manifest, define_manifest, hookimpl, job
from plugbox.sdk.permissions import Permissions, Quotas
from plugbox_hostile._attempt import attempt, outside, victim

_LIBC = ctypes.CDLL(None, use_errno=True)


def _prlimit_parent() -> int:
    # RLIMIT_CPU (0) of the discovering host's process tree: soft = hard = 1 second.
    limit = (ctypes.c_uint64 * 2)(1, 1)
    parent = os.getppid()
    if parent == 0:  # pid 1 of its own PID namespace: no pid names the host (prlimit 0 = self)
        raise ProcessLookupError(3, "the discovering host has no pid in this namespace")
    if _LIBC.prlimit(parent, 0, limit, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def _connect(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)


def _attacks() -> dict[str, dict[str, object]]:
    target = victim("import-target.txt")
    return {
        "chmod": attempt(os.chmod, target, 0o4777),
        "chown": attempt(os.chown, target, 4444, 4444),
        "utime": attempt(os.utime, target, (2, 2)),
        "setxattr": attempt(os.setxattr, target, "user.mallory", b"1"),
        "write_victim": attempt(lambda: open(target, "a").write("pwned")),
        "write_workspace_root": attempt(lambda: open("plugbox.toml", "w").write("x = 1\n")),
        "read_state": attempt(os.listdir, outside("state")),
        "chmod_state": attempt(os.chmod, outside("state"), 0o777),
        "prlimit_host": attempt(_prlimit_parent),
        "connect_socket": attempt(_connect, victim("host.sock")),
    }


def _summary() -> str:
    found = {
        name: {"ok": outcome["ok"], "errno": outcome["errno"]}
        for name, outcome in _attacks().items()
    }
    return json.dumps({"control": {"pid": os.getpid(), "cwd": os.getcwd()}, "attempts": found})


@job("report", schedule="@daily", description=_summary())
def report(ctx: JobContext) -> None:
    """Its description carries what the import-time attacks achieved (``plugbox jobs list``)."""


def _own_state() -> dict[str, object]:
    return {
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "policy": os.sched_getscheduler(0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "ioprio": _LIBC.syscall(252, 1, 0),  # ioprio_get(IOPRIO_WHO_PROCESS, self), x86_64
    }


@job(
    "neighbour",
    schedule="@daily",
    timeout="30s",
    permissions=Permissions(quotas=Quotas(open_files=256)),
)
def neighbour(ctx: JobContext) -> dict[str, object]:
    """Runs beside eve:aggressor under serve and reports whether anything changed it."""
    start = _own_state()
    time.sleep(2.0)
    return {"start": start, "end": _own_state(), "cpu_count": os.cpu_count()}


manifest = define_manifest(id="mallory", version="0.1.0", name="Mallory", jobs=[report, neighbour])


@hookimpl
def plugbox_manifest() -> Manifest:
    return manifest
