"""Jobs that hold memory or tasks where a run without a cgroup could hide them.

Used by tests/sandbox/test_unprivileged_runner.py: memory the kernel holds for the run outside
every resident set (a memfd filled with ``write()``), and threads held near a process limit.
"""

from __future__ import annotations

import os
import threading
import time

MIB = 1024 * 1024


def memfd_hold(ctx):
    """Fill a memfd with ``mb`` MiB through ``write()`` (never mapped), then hold it a while.

    The buffer written is 1 MiB, so the process's own resident set stays small: only the memfd
    grows. Returns what it held, which only a run that was not killed gets to report.
    """
    mb = int(ctx.config["mb"])
    memfd = os.memfd_create("hold")
    chunk = b"\x01" * MIB
    for _ in range(mb):
        os.write(memfd, chunk)
    time.sleep(float(ctx.config.get("hold_s", 1.0)))
    return {"held_mb": os.fstat(memfd).st_blocks * 512 // MIB}


def hold_threads(ctx):
    """Start threads until ``count`` run or ``start`` fails; hold them for ``hold_s`` seconds.

    Reports how many started and the error that stopped it, if any. With ``wait_for``, first
    waits (up to 10 s) for that file to exist and reports whether it did; with ``holding``,
    creates that file once its threads run — so two runs can meet at the moment that matters.
    """
    count = int(ctx.config["count"])
    waited = None
    if ctx.config.get("wait_for"):
        deadline = time.monotonic() + 10
        while not os.path.exists(ctx.config["wait_for"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        waited = os.path.exists(ctx.config["wait_for"])
    release = threading.Event()
    started = []
    error = None
    for _ in range(count):
        thread = threading.Thread(target=release.wait, daemon=True)
        try:
            thread.start()
        except RuntimeError as err:  # "can't start new thread": EAGAIN from clone
            error = str(err)
            break
        started.append(thread)
    if ctx.config.get("holding"):
        with open(ctx.config["holding"], "w"):
            pass
    time.sleep(float(ctx.config.get("hold_s", 0)))
    release.set()
    for thread in started:
        thread.join()
    report = {"started": len(started), "error": error}
    if waited is not None:
        report["waited"] = waited
    return report


def fork_one(ctx):
    """Fork one child and reap it: whether this run can still create a task at all."""
    try:
        pid = os.fork()
    except OSError as err:
        return {"forked": False, "errno": err.errno}
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return {"forked": True, "errno": None}
