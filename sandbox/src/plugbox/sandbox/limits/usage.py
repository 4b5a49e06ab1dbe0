"""Tree-wide resource use of a run, sampled by the parent's watchdog.

A quota of ``memory_mb`` or ``cpu_ms`` is a promise about the whole run, but the kernel's per-process
numbers cover one process each: a job that forks four workers uses four times the CPU its own
``RLIMIT_CPU`` allows. With a cgroup the kernel keeps the tree's totals itself — CPU of processes
that already exited included — and the sampler just reads them. Without one it walks the process
tree with psutil, which is an estimate between samples (see :class:`TreeSampler`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psutil

from plugbox.sandbox.limits.cgroups import RunCgroup

__all__ = ["TreeSampler", "TreeUsage"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class TreeUsage:
    """One sample: memory in use now, CPU used so far, live processes now (threads not counted)."""

    rss_mb: float
    cpu_ms: int
    processes: int


@dataclass(frozen=True)
class _Seen:
    cpu_ms: int  # the process's own CPU plus that of the children it reaped
    parent: psutil.Process | None


class TreeSampler:
    """Samples the run rooted at ``root_pid``; keeps the peak memory and the CPU total.

    With a cgroup, ``rss_mb`` is the memory charged to the run (``memory.current``, page cache and
    tmpfs included) and ``cpu_ms`` is exact. Without one, ``rss_mb`` is the sum of the tree's
    resident set sizes — which counts pages a forked child still shares with the zygote, so it
    over-states a fresh child by the zygote's size — and ``cpu_ms`` adds up, per process, its own
    CPU and the CPU of the children it reaped. A process that vanishes is kept at its last sample
    unless its parent (still in the tree) reaped it, which folds its CPU into the parent's; a
    process that starts and ends between two samples without being reaped by the tree is missed.
    """

    def __init__(self, root_pid: int, cgroup: RunCgroup | None) -> None:
        self.root_pid = root_pid
        self.cgroup = cgroup
        self.peak_memory_mb = 0.0
        self.cpu_ms = 0
        self._seen: dict[psutil.Process, _Seen] = {}
        self._lost_cpu_ms = 0

    def sample(self) -> TreeUsage:
        """Read the tree now; update :attr:`peak_memory_mb` and :attr:`cpu_ms` (never decrease)."""
        usage = self._from_cgroup(self.cgroup) if self.cgroup is not None else self._from_tree()
        self.peak_memory_mb = max(self.peak_memory_mb, usage.rss_mb)
        self.cpu_ms = max(self.cpu_ms, usage.cpu_ms)
        return usage

    def _from_cgroup(self, cgroup: RunCgroup) -> TreeUsage:
        # The kernel's peak catches a spike between two samples.
        self.peak_memory_mb = max(self.peak_memory_mb, cgroup.peak_memory_mb())
        return TreeUsage(cgroup.current_memory_mb(), cgroup.cpu_ms(), len(cgroup.pids()))

    def _from_tree(self) -> TreeUsage:
        procs: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        now: dict[psutil.Process, _Seen] = {}
        rss = 0
        live = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    zombie = proc.status() == psutil.STATUS_ZOMBIE
                    if not zombie:
                        rss += proc.memory_info().rss
                    parent = proc.parent()
            except psutil.Error:
                continue
            live += not zombie
            total = times.user + times.system + times.children_user + times.children_system
            now[proc] = _Seen(int(total * 1000), parent)
        for proc, seen in self._seen.items():
            if proc not in now and (seen.parent is None or seen.parent not in now):
                # Nobody left in the tree reaped it (it was orphaned, or the root itself ended):
                # its CPU is in no live counter any more, so keep its last reading.
                self._lost_cpu_ms += seen.cpu_ms
        self._seen = now
        cpu = self._lost_cpu_ms + sum(seen.cpu_ms for seen in now.values())
        return TreeUsage(rss / MIB, cpu, live)
