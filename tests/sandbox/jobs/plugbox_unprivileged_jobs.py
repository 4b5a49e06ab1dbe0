"""Jobs for runs whose host is not root (tests/sandbox/test_unprivileged_runner.py).

The attacks themselves come from ``plugbox_attack_jobs``; these are the few that only matter when
no cgroup holds the run: memory that grows slowly enough for the watchdog to see it, one allocation
past the address-space limit, and daemons whose run child is gone (or still there) when the run
ends. A daemon's pid is printed, so the test can look for it after the run.
"""

from __future__ import annotations

import ctypes
import os
import resource
import time

MIB = 1024 * 1024


def whoami(ctx):
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid()}


def memory_creep(ctx):
    """Grow by a few touched MiB at a time: far below RLIMIT_AS when the quota is crossed."""
    step = int(ctx.config.get("step_mb", 4)) * MIB
    held = []
    while True:
        held.append(b"\x01" * step)  # bytes of 1s: every page is written, so it is resident
        time.sleep(0.02)


def allocate_at_once(ctx):
    """One allocation of ``mb`` MiB; past RLIMIT_AS this raises MemoryError before any page is used."""
    blob = b"\x01" * (int(ctx.config["mb"]) * MIB)
    return {"allocated": len(blob)}


def raise_limits(ctx):
    """Try to lift the limits the child was given; a user namespace's capabilities must not help."""
    refused = {}
    for name in ("RLIMIT_AS", "RLIMIT_NPROC"):
        which = getattr(resource, name)
        try:
            resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (ValueError, OSError) as err:
            refused[name] = type(err).__name__
    return {"refused": refused}


def _daemon(name):
    """setsid double fork: the daemon's parent exits at once, so it is re-parented and alone in
    its own session. Returns the daemon's pid in the caller; the daemon itself sleeps, named
    ``name`` (its pid means nothing outside the run's PID namespace: the host finds it by name)."""
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            buffer = ctypes.create_string_buffer(name.encode())
            ctypes.CDLL(None).prctl(15, buffer, 0, 0, 0)  # PR_SET_NAME
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            time.sleep(3600)
            os._exit(0)
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    print(f"daemon {pid}", flush=True)
    return pid


def daemonize_then_exit(ctx):
    """The run child ends by itself before the parent kills anything: its orphan goes up a level."""
    _daemon(ctx.config["name"])
    os._exit(0)


def daemonize_then_hang(ctx):
    """The run child is still alive when the run is killed (timeout): its orphan is its own."""
    _daemon(ctx.config["name"])
    time.sleep(3600)


def folder_rule(ctx):
    """What a folder rule (``x/``) lets a job do with ``x`` itself, through ``runtime.fs``."""
    fs = ctx.runtime.fs
    folder = ctx.config["folder"]
    got = {"exists": fs.exists(folder), "is_dir": fs.stat(folder).is_dir}
    fs.mkdir(folder, exist_ok=True)
    fs.write_text(f"{folder}/f.txt", "hi")
    got["listdir"] = fs.listdir(folder)
    fs.remove(f"{folder}/f.txt")
    try:
        fs.remove(folder)
    except PermissionError as err:
        got["remove"] = getattr(err, "rule", repr(err))
    return got


def net_error(ctx):
    """The text of the error a failed request raises in the job."""
    try:
        ctx.runtime.net.get(ctx.config["url"])
    except OSError as err:
        return {"type": type(err).__name__, "error": str(err)}
    return {"error": None}
