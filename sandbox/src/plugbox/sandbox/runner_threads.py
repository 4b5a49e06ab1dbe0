"""The runner's two background threads and how a run is ended.

:class:`Warmer` forks the next run's child after a run, so the trigger of the next run finds it
ready; :class:`Cleaner` finishes ended runs — kills until the cgroup is empty, then recycles it —
off the trigger -> outcome path.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from plugbox.sandbox.limits.cgroup_pool import CgroupPool
from plugbox.sandbox.limits.cgroups import RunCgroup
from plugbox.sandbox.limits.reaper import kill_tree
from plugbox.sandbox.request import RunRequest
from plugbox.sdk.permissions import Quotas

log = logging.getLogger(__name__)


class Warmer:
    """Prepares the next run's child in the background, off the trigger -> outcome path."""

    def __init__(self, prewarm: Callable[[str, RunRequest, Quotas], None]) -> None:
        self._prewarm = prewarm
        self._queue: queue.Queue[tuple[str, RunRequest, Quotas]] = queue.Queue()
        threading.Thread(target=self._work, name="plugbox-warmer", daemon=True).start()

    def submit(self, key: str, request: RunRequest, quotas: Quotas) -> None:
        self._queue.put((key, request, quotas))

    def drain(self) -> None:
        self._queue.join()

    def _work(self) -> None:
        while True:
            key, request, quotas = self._queue.get()
            try:
                self._prewarm(key, request, quotas)
            except Exception:
                log.exception("preparing a warm child failed")
            finally:
                self._queue.task_done()


class Cleaner:
    """Finishes ended runs in the background: kill until the cgroup is empty, then recycle it."""

    def __init__(self, pool: CgroupPool) -> None:
        self._pool = pool
        self._queue: queue.Queue[tuple[int, RunCgroup] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="plugbox-cleaner", daemon=True)
        self._thread.start()

    def submit(self, pid: int, cgroup: RunCgroup) -> None:
        self._queue.put((pid, cgroup))

    def drain(self) -> None:
        """Block until every submitted run is fully cleaned up."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is not None:
                    _, cgroup = item
                    self._pool.release(cgroup)  # kills until empty, then keeps or removes it
            except Exception:
                log.exception("cleaning up a run failed")
            finally:
                self._queue.task_done()


def end_run(pid: int, cgroup: RunCgroup | None) -> None:
    """Kill every process of the run; the cgroup is authoritative, the tree walk the fallback."""
    if cgroup is not None:
        cgroup.kill_all()  # kills until the cgroup is empty: nothing of the run can remain
    else:
        kill_tree(pid, session_id=pid)
