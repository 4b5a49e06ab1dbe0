"""Emptied run cgroups kept for the next run instead of removed and made again.

Making a memory cgroup and removing it costs the kernel more than a trivial run costs in total
(allocating and freeing the controller state, an RCU grace period, a worker to offline it). A
run's cgroup is therefore killed empty, reset (:meth:`RunCgroup.recycle`) and parked here; the
next run takes it and sets its own limits. Nothing of one run reaches the next: no process
survives (the kill waits until ``cgroup.procs`` is empty), what the last run left charged is
reclaimed, and accounting starts from a fresh baseline. A cgroup that cannot be reset that way is
removed as before.
"""

from __future__ import annotations

import threading

from plugbox.sandbox.limits.cgroups import RunCgroup
from plugbox.sdk.permissions import Quotas

__all__ = ["CgroupPool"]

#: Idle cgroups kept at most; one per run that can be in flight is plenty.
MAX_IDLE = 16


class CgroupPool:
    """Hands out run cgroups, recycled where possible; thread-safe."""

    def __init__(self, *, max_idle: int = MAX_IDLE) -> None:
        self._max_idle = max_idle
        self._idle: list[RunCgroup] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, name: str, quotas: Quotas) -> RunCgroup | None:
        """A cgroup limited to ``quotas``: a recycled one, else a new one named ``name``.

        ``None`` when this machine offers no usable cgroups (see :meth:`RunCgroup.create`).
        """
        with self._lock:
            cgroup = self._idle.pop() if self._idle else None
        if cgroup is not None:
            try:
                cgroup.limit(quotas)
            except OSError:
                cgroup.close()
            else:
                return cgroup
        return RunCgroup.create(name, quotas)

    def release(self, cgroup: RunCgroup) -> None:
        """End what is left of a run in ``cgroup`` and keep the cgroup for another, or remove it."""
        cgroup.kill_all()
        with self._lock:
            keep = not self._closed and len(self._idle) < self._max_idle
        if keep and cgroup.recycle():
            with self._lock:
                if not self._closed:
                    self._idle.append(cgroup)
                    return
        cgroup.close()

    def close(self) -> None:
        """Remove every idle cgroup; cgroups released later are removed at once."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for cgroup in idle:
            cgroup.close()
