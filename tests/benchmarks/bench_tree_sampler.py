"""What one watchdog sample costs without a cgroup: ``TreeSampler.sample()`` on a live run tree.

Run: ``.venv/bin/python tests/benchmarks/bench_tree_sampler.py`` (as root, or as the unprivileged
host user; the figures differ little). The runner samples every 50 ms per run, so this is the
parent's steady CPU cost of watching a run that has no cgroup.

Trees: ``small`` is one run child (what most jobs are); ``workers`` is a root with 7 forked
workers; ``shmem`` is that root holding a 64 MiB memfd, a 16 MiB shared anonymous mapping
and 40 more open files, and ``fds`` a root with 500 open regular files. Each process is a
fork of this one (Python with psutil and the SDK imported, as a zygote child is).

Prints one JSON object: per tree, ``processes``, ``samples``, ``us_per_sample_p50`` / ``_p90``
and ``rss_mb`` of the last sample (to check what it counted).
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable

from plugbox.sandbox.limits import TreeSampler

SAMPLES = 400
MIB = 1024 * 1024


def _hold_forever() -> None:
    while True:
        signal.pause()


def _small(ready: Callable[[], None]) -> None:
    ready()
    _hold_forever()


def _workers(ready: Callable[[], None]) -> None:
    for _ in range(7):
        if os.fork() == 0:
            _hold_forever()
    ready()
    _hold_forever()


def _shmem(ready: Callable[[], None]) -> None:
    memfd = os.memfd_create("bench")
    chunk = b"x" * MIB
    for _ in range(64):
        os.write(memfd, chunk)
    shared = mmap.mmap(-1, 16 * MIB, flags=mmap.MAP_SHARED)
    shared.write(b"y" * 16 * MIB)
    held = [open(os.devnull, "rb") for _ in range(40)]  # noqa: SIM115 - held open on purpose
    _workers(ready)
    del shared, held


def _fds(ready: Callable[[], None]) -> None:
    scratch = tempfile.mkdtemp()
    held = [open(os.path.join(scratch, str(i)), "wb") for i in range(500)]  # noqa: SIM115
    ready()
    _hold_forever()
    del held


def _measure(start: Callable[[Callable[[], None]], None]) -> dict[str, float]:
    ready_r, ready_w = os.pipe()
    root = os.fork()
    if root == 0:
        os.setpgid(0, 0)
        start(lambda: os.write(ready_w, b"r") and None)
        os._exit(0)
    os.read(ready_r, 1)
    time.sleep(0.2)  # the workers are forked; let them settle into pause()
    sampler = TreeSampler(root, None)
    usage = sampler.sample()  # the first sample fills caches; the watchdog pays it once per run
    timings = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        usage = sampler.sample()
        timings.append((time.perf_counter() - began) * 1e6)
    os.killpg(root, signal.SIGKILL)
    os.waitpid(root, 0)
    os.close(ready_r)
    os.close(ready_w)
    timings.sort()
    return {
        "processes": usage.processes,
        "samples": SAMPLES,
        "us_per_sample_p50": round(statistics.median(timings), 1),
        "us_per_sample_p90": round(timings[int(len(timings) * 0.9)], 1),
        "rss_mb": round(usage.rss_mb, 1),
    }


def main() -> None:
    trees = {"small": _small, "workers": _workers, "shmem": _shmem, "fds": _fds}
    print(json.dumps({name: _measure(start) for name, start in trees.items()}, indent=1))


if __name__ == "__main__":
    main()
