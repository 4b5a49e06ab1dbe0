"""What the HTTP API asks of a running :class:`~plugbox.host.daemon.Daemon`.

A mixin, so the daemon's own module keeps to the scheduler loop: these methods implement
:class:`plugbox.host.operations.Operations` on the daemon's state and the shared fire queue. A
trigger becomes a ``queued`` row that any replica with an idle worker claims; a pause is stored
and every replica hears of it (:mod:`plugbox.host.sync`); a cancel reaches a waiting run through
the store and a running one through its worker's cancel event (on the replica running it).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from plugbox.host.daemon_outage import StoreOutage
from plugbox.host.daemon_workers import RunningRun
from plugbox.host.events import emit
from plugbox.host.manual import queue_manual_run
from plugbox.host.operations import (
    Readiness,
    RunElsewhereError,
    RunFinishedError,
)
from plugbox.host.scheduler import Plan
from plugbox.host.services import Host
from plugbox.host.store import PauseState, RunRecord
from plugbox.host.store.queue import FireQueue
from plugbox.host.store.records import ACTIVE_STATUSES

#: The loop wakes at least every second; one that has not turned for this long is stuck.
TICK_STALE_S = 10.0


class OperationsMixin:
    """Trigger, wait, pause/resume, cancel and readiness, on the daemon's state."""

    # Set by Daemon.__init__.
    host: Host
    plan: Plan
    queue: FireQueue
    _lock: threading.Lock  # guards plan and _active
    _ended: threading.Condition  # on _lock; notified whenever a run ends
    _active: dict[str, dict[str, RunningRun]]
    _stopping: threading.Event
    _wake: threading.Event
    _claims: threading.Event
    _tick: float  # time.monotonic() of the loop's last turn; 0 until started
    outage: StoreOutage

    def trigger(self, job: str, requested_by: str) -> RunRecord:
        """Record a manual run of ``job`` as ``queued``: the replica with an idle worker that
        claims it first runs it, under the job's concurrency policy, decided as it starts."""
        record = queue_manual_run(self.host, job, requested_by)
        emit("triggered", job=job, run=record.run_id, by=requested_by)
        self._claims.set()
        return record

    def wait(self, run_id: str, timeout_s: float) -> RunRecord:
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.host.store.get(run_id)
            remaining = deadline - time.monotonic()
            if record.status not in ACTIVE_STATUSES or remaining <= 0:
                return record
            with self._ended:
                # Bounded: a run that ended between the read above and this wait was notified
                # before we listened.
                self._ended.wait(min(remaining, 0.5))

    def set_paused(self, job: str, paused: bool, by: str) -> PauseState:
        self.host.job(job)
        self.host.store.set_paused(job, paused, by=by)
        with self._lock:
            if paused:
                self.plan.pause(job)
            else:
                self.plan.resume(job)
        emit("paused" if paused else "resumed", job=job, by=by)
        self._wake.set()
        self.queue.notify("paused")
        return self.host.store.pause_state(job)

    def cancel(self, run_id: str, by: str) -> RunRecord:
        record = self.host.store.get(run_id)
        if record.status not in ACTIVE_STATUSES:
            raise RunFinishedError(record)
        if record.status == "queued":
            cancelled = record.model_copy(
                update={
                    "status": "cancelled",
                    "finished_at": max(datetime.now(UTC), record.sort_at),
                    "cancelled_by": by,
                    "reason": f"cancelled by {by} through the HTTP API before it started",
                }
            )
            if self.queue.cancel_queued(cancelled):
                emit("cancelling", job=record.job, run=run_id, by=by)
                self.host.finished(cancelled)
                with self._ended:
                    self._ended.notify_all()
                return cancelled
            record = self.host.store.get(run_id)  # claimed meanwhile: cancel it running
        with self._lock:
            active = next(
                (a for runs in self._active.values() for a in runs.values() if a.run_id == run_id),
                None,
            )
            if active is not None:
                active.cancelled_by = by
                active.cancel.set()
        if active is None:
            # Another replica runs it: the request goes through the store (sync.py hears it).
            if not self.queue.request_cancel(run_id, by):
                raise RunElsewhereError(record)
            emit("cancel_requested", job=record.job, run=run_id, by=by, host=record.host_id)
            return self.host.store.get(run_id)
        emit("cancelling", job=record.job, run=run_id, by=by)
        return record

    def cancel_requested(self, requests: dict[str, str]) -> None:
        """Cancel the runs of this replica that another one was asked to cancel."""
        with self._lock:
            asked = [
                (a, requests[a.run_id])
                for runs in self._active.values()
                for a in runs.values()
                if a.run_id in requests and not a.cancel.is_set()
            ]
            for active, by in asked:
                active.cancelled_by = by
                active.cancel.set()
        for active, by in asked:
            emit("cancelling", run=active.run_id, by=by)

    def readiness(self) -> Readiness:
        problems = []
        discovered = "discovery" in self.host.__dict__
        if not discovered:
            problems.append("plugins are not discovered yet")
        # A read alone is not enough: a locked SQLite file or a full disk still answers reads
        # and refuses every write; the outage is what the workers and the dispatcher saw.
        refused = self.outage.problem()
        try:
            self.host.store.paused_jobs()
            reachable = refused is None
        except Exception as err:  # any failure of the store means not ready; say which
            reachable = False
            problems.append(f"the run store does not answer: {type(err).__name__}: {err}")
        if refused is not None:
            problems.append(refused)
        ticking = (
            self._tick > 0
            and not self._stopping.is_set()
            and time.monotonic() - self._tick < TICK_STALE_S
        )
        if not ticking:
            problems.append(
                "the scheduler is stopping"
                if self._stopping.is_set()
                else "the scheduler loop has not turned recently"
            )
        return Readiness(
            plugins_discovered=discovered,
            store_reachable=reachable,
            scheduler_ticking=ticking,
            detail="; ".join(problems),
        )
