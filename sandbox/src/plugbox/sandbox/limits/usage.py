"""Tree-wide resource use of a run, sampled by the parent's watchdog.

A quota of ``memory_mb`` or ``cpu_ms`` is a promise about the whole run, but the kernel's per-process
numbers cover one process each: a job that forks four workers uses four times the CPU its own
``RLIMIT_CPU`` allows. With a cgroup the kernel keeps the tree's totals itself — CPU of processes
that already exited included — and the sampler just reads them. Without one it walks the process
tree with psutil, which is an estimate between samples (see :class:`TreeSampler`).
"""

from __future__ import annotations

from dataclasses import dataclass

from plugbox.sandbox.limits import procfs
from plugbox.sandbox.limits.cgroups import RunCgroup
from plugbox.sandbox.limits.shmem import SharedMemory

__all__ = ["TreeSampler", "TreeUsage"]

MIB = 1024 * 1024

ProcessKey = tuple[int, int]  # (pid, start time): one process, even once its pid is reused


@dataclass(frozen=True)
class TreeUsage:
    """One sample: memory in use now, CPU used so far, live processes now (threads not counted).

    ``hidden`` counts live processes whose memory the parent could not fully inspect (without a
    cgroup: a process that made itself non-dumpable hides its descriptors and mappings from an
    unprivileged parent); a watchdog enforcing a memory quota should treat them as over it.
    """

    rss_mb: float
    cpu_ms: int
    processes: int
    hidden: int = 0


@dataclass(frozen=True)
class _Seen:
    cpu_ms: int  # the process's own CPU plus that of the children it reaped
    parent: ProcessKey | None  # its parent, when that is in the tree too


class TreeSampler:
    """Samples the run rooted at ``root_pid``; keeps the peak memory and the CPU total.

    With a cgroup, ``rss_mb`` is the memory charged to the run (``memory.current``, page cache and
    tmpfs included) and ``cpu_ms`` is exact. Without one, ``rss_mb`` is the sum of the tree's
    resident set sizes — which counts pages a forked child still shares with the zygote, so it
    over-states a fresh child by the zygote's size — plus the memory-backed files (memfd, tmpfs)
    the tree holds open, counted once each at their allocated size (:mod:`.shmem`); and
    ``cpu_ms`` adds up, per process, its own CPU and the CPU of the children it reaped. A process
    that vanishes is kept at its last sample unless its parent (still in the tree) reaped it,
    which folds its CPU into the parent's; a process that starts and ends between two samples
    without being reaped by the tree is missed.
    """

    def __init__(self, root_pid: int, cgroup: RunCgroup | None) -> None:
        self.root_pid = root_pid
        self.cgroup = cgroup
        self.peak_memory_mb = 0.0
        self.cpu_ms = 0
        self._seen: dict[ProcessKey, _Seen] = {}
        self._lost_cpu_ms = 0
        self._shared = SharedMemory(root_pid)

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
        # Each reader returns None for a process that exited since it was listed: no race here
        # can raise, and a vanished process is simply not in this sample.
        stats = {
            pid: stat
            for pid in procfs.descendants(self.root_pid)
            if (stat := procfs.read_stat(pid))
        }
        now: dict[ProcessKey, _Seen] = {}
        resident = 0
        shmem_by_pid: dict[int, int] = {}
        for pid, stat in stats.items():
            parent = stats.get(stat.ppid)
            now[(pid, stat.start)] = _Seen(
                stat.cpu_ms, (parent.pid, parent.start) if parent else None
            )
            memory = None if stat.zombie else procfs.read_memory(pid)
            if memory is not None:
                resident += memory.resident
                shmem_by_pid[pid] = memory.shmem
        for key, seen in self._seen.items():
            if key not in now and (seen.parent is None or seen.parent not in now):
                # Nobody left in the tree reaped it (it was orphaned, or the root itself ended):
                # its CPU is in no live counter any more, so keep its last reading.
                self._lost_cpu_ms += seen.cpu_ms
        self._seen = now
        held = self._shared.sample(shmem_by_pid)
        cpu = self._lost_cpu_ms + sum(seen.cpu_ms for seen in now.values())
        memory_mb = max(0, resident + held.extra_bytes) / MIB
        return TreeUsage(memory_mb, cpu, len(shmem_by_pid), held.hidden)
