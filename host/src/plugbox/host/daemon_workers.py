"""The worker side of ``plugbox serve``: claim what the pool can start, run it, keep its lease.

A mixin of :class:`~plugbox.host.daemon.Daemon`, so the daemon's module keeps to its loop. Three
kinds of thread:

- the **dispatcher** claims as many due fires from the shared queue as this replica has idle
  workers (and each plugin's ``max_workers`` allows), records the ones refused at start
  (concurrency, misfire) and hands the rest to workers; it also recovers runs whose lease lapsed
  on any replica, and retries them per their job's policy;
- **workers** run one claimed run at a time in the sandbox and write its outcome — fenced: if the
  lease was lost meanwhile, the write is refused and the recovery's record stands;
- the **renewer** extends this replica's leases every third of the lease, and stops any run whose
  lease another replica took over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from queue import Queue

from plugbox.host.daemon_outage import (
    FAILED_STATUSES,
    OUTAGE_ERRORS,
    HeldWritesMixin,
    StoreOutage,
)
from plugbox.host.events import emit
from plugbox.host.execute import RunPlan, host_failure, new_run_id
from plugbox.host.metrics import HostMetrics
from plugbox.host.scheduler import Fire, Plan
from plugbox.host.scheduler.admission import Admission, Waiting, admit
from plugbox.host.services import Host
from plugbox.host.store import RunRecord
from plugbox.host.store.queue import Claimed, FireQueue, fire_key

log = logging.getLogger("plugbox.host")
#: How often the dispatcher looks for due fires when nothing woke it (a NOTIFY, a local event).
POLL_S = 0.25


class LeaseLostError(RuntimeError):
    """Another replica recovered this run: its lease lapsed before this replica renewed it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} was taken over by another replica after its lease lapsed; this"
            " replica's outcome is not recorded (the recovery's `interrupted` record stands)"
        )


@dataclass
class RunningRun:
    """A run a worker of this process carries out, and how to stop it."""

    run_id: str
    epoch: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    cancelled_by: str | None = None
    lease_lost: bool = False
    held: bool = False  # its outcome waits in memory for the store (StoreOutage)


class WorkerPoolMixin(HeldWritesMixin):
    """Claims, runs and leases, on the daemon's state."""

    host: Host
    plan: Plan
    queue: FireQueue
    metrics: HostMetrics
    outage: StoreOutage
    _lock: threading.Lock
    _ended: threading.Condition
    _active: dict[str, dict[str, RunningRun]]  # job -> run id -> run; claimed or running here
    _handoff: Queue[Claimed | None]
    _idle: int  # workers waiting for a run
    _stopping: threading.Event
    _claims: threading.Event  # set to make the dispatcher claim now

    # -- dispatcher ------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        lease_s = self.queue.lease.total_seconds()
        next_recovery = 0.0
        clock = threading.Event()  # only for its wait()
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                # Order matters after an outage: this process's held outcomes and leases first,
                # so that it never records its own runs interrupted over outcomes it holds; the
                # recovery (a write transaction) then proves the store takes writes again.
                probe = self.outage.down
                if probe:
                    self._write_held()
                    self._renew()
                if probe or now >= next_recovery:
                    self._recover(restarted=False)
                    next_recovery = now + lease_s / 4
                self._claim()
                if probe:
                    self.outage.answered()
            except OUTAGE_ERRORS as err:  # the database away: said once, tried every second
                self.outage.failed(err, "claiming fires")
                clock.wait(1.0)
            except Exception:  # not the database: a bug, said every time
                log.exception("claiming fires failed; trying again")
                emit("claim_failed")
                clock.wait(1.0)
            self._claims.wait(POLL_S)
            self._claims.clear()

    def _claim(self) -> None:
        with self._lock:
            idle = self._idle
            held = self._held()
        if idle <= 0:
            return
        plugins = {p.manifest.id for p in self.host.plugins}
        result = self.queue.claim(
            idle,
            plugins=plugins,
            held=held,
            caps=self.host.config.max_workers(),
            decide=self._decide,
        )
        for record in result.skipped:
            emit(record.status, job=record.job, run=record.run_id, reason=record.reason)
            self.host.finished(record)
        with self._lock:
            for claimed in result.started:
                record = claimed.record
                self._active.setdefault(record.job, {})[record.run_id] = RunningRun(
                    record.run_id, claimed.epoch
                )
                self._idle -= 1
            doomed = [
                run
                for runs in self._active.values()
                for run in runs.values()
                if run.run_id in result.replace
            ]
        for run in doomed:
            emit("replacing", run=run.run_id)
            run.cancel.set()
        for claimed in result.started:
            self._handoff.put(claimed)
        if result.skipped:
            with self._ended:
                self._ended.notify_all()

    def _decide(
        self,
        fire: Waiting,
        running: int,
        waiting: Sequence[datetime],
        now: datetime,
    ) -> Admission:
        with self._lock:
            job = self.plan.job(fire.job)
            paused = fire.job in self.plan.paused
        if paused:
            return Admission("skip", "the job was paused before the run started")
        return admit(fire, job, running=running, waiting=waiting, now=now)

    def _held(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for job, runs in self._active.items():
            plugin = job.partition(":")[0]
            held[plugin] = held.get(plugin, 0) + len(runs)
        return held

    def _recover(self, *, restarted: bool) -> None:
        reason = (
            "the host stopped while the run was active"
            if restarted
            else "the replica running it stopped renewing its lease (killed, or cut off from"
            " the database)"
        )
        for record in self.queue.recover(reason, restarted=restarted):
            emit("interrupted", job=record.job, run=record.run_id, host=record.host_id)
            self.host.finished(record)
            self._retry_after(record, self._fire_for(record))

    # -- workers -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            claimed = self._handoff.get()
            if claimed is None:
                return
            # Nothing raised for one run may end this worker: the pool would shrink for good.
            try:
                self._run(claimed)
            except Exception:
                log.exception("a worker failed handling run %s", claimed.record.run_id)
                emit("worker_error", job=claimed.record.job)
            finally:
                with self._lock:
                    self._idle += 1
                self._claims.set()

    def _run(self, claimed: Claimed) -> None:
        start = claimed.record
        self.metrics.observe_lag((datetime.now(UTC) - start.scheduled_at).total_seconds())
        with self._lock:
            active = self._active[start.job][start.run_id]
        fire = self._fire_for(start, priority=claimed.priority)
        emit(
            "fired",
            job=start.job,
            run=start.run_id,
            trigger=start.trigger,
            attempt=start.attempt,
            scheduled_at=start.scheduled_at,
        )
        try:
            record = self._execute(start, active, claimed.epoch)
        except LeaseLostError as err:
            emit("lease_lost", job=start.job, run=start.run_id, reason=str(err))
            return
        except Exception as exc:
            log.exception("running %s (run %s) failed in the host", start.job, start.run_id)
            record = host_failure(_common(start), start.started_at or datetime.now(UTC), exc)
            if not self._finish(record, active):
                emit("lease_lost", job=start.job, run=start.run_id)
                return
            self.host.finished(record)
        finally:
            with self._ended:
                self._active.get(start.job, {}).pop(start.run_id, None)
                self._ended.notify_all()
        emit(
            "finished",
            job=start.job,
            run=start.run_id,
            status=record.status,
            ms=record.duration_ms,
            reason=record.kill_reason or (record.error.type if record.error else None),
            **({"held": "the store is away: the outcome waits in memory"} if active.held else {}),
        )
        # A held outcome's retry is queued once it is written (_write_held).
        if record.status in FAILED_STATUSES and not active.held and not self._stopping.is_set():
            self._retry_after(record, fire)

    def _finish(self, record: RunRecord, active: RunningRun) -> bool:
        """The fenced final write of a run this process holds; False when the lease was lost.
        While the store is away the outcome is held in memory (``active.held``) instead."""
        try:
            return self.queue.finish(record, active.epoch)
        except OUTAGE_ERRORS as err:
            self.outage.failed(err, f"writing the outcome of run {record.run_id}")
            if not self.outage.hold(record, active.epoch):
                raise
            active.held = True
            return True

    def _execute(self, start: RunRecord, active: RunningRun, epoch: int) -> RunRecord:
        plugin_id, _, job_id = start.job.partition(":")
        plugin = self.host.plugin(plugin_id)

        def write(record: RunRecord) -> None:
            if active.cancelled_by is not None and record.status == "cancelled":
                record = record.model_copy(
                    update={
                        "cancelled_by": active.cancelled_by,
                        "reason": f"cancelled by {active.cancelled_by} through the HTTP API",
                    }
                )
            if not self._finish(record, active):
                raise LeaseLostError(record.run_id)

        return self.host.execute(
            RunPlan(
                plugin=plugin,
                job_id=job_id,
                trigger=start.trigger,
                attempt=start.attempt,
                first_run_id=start.first_run_id,
                scheduled_at=start.scheduled_at,
                # This run is stored already (running); fires still waiting are not runs yet.
                run_count=self.queue.run_count(start.job),
                requested_by=start.requested_by,
                lease_epoch=epoch,
            ),
            run_id=start.run_id,
            cancel=active.cancel,
            write=write,
        )

    # -- leases ------------------------------------------------------------------------------
    def _renew_loop(self) -> None:
        every = self.queue.lease.total_seconds() / 3
        pause = threading.Event()
        while not pause.wait(every):
            if self._stopping.is_set() and not self._handoff.qsize() and not self._leases():
                return
            try:
                self._renew()
            except OUTAGE_ERRORS as err:  # the dispatcher renews first when the store is back
                self.outage.failed(err, "renewing leases")
            except Exception:
                log.exception("renewing leases failed; trying again")
                emit("lease_renewal_failed")

    def _leases(self) -> dict[str, int]:
        with self._lock:
            return {
                run.run_id: run.epoch for runs in self._active.values() for run in runs.values()
            }

    def _renew(self) -> None:
        """Extend this process's leases; stop the runs another replica took over."""
        leases = self._leases()
        if not leases:
            return
        lost = self.queue.renew(leases)
        with self._lock:
            doomed = [
                run for runs in self._active.values() for run in runs.values() if run.run_id in lost
            ]
        for run in doomed:
            run.lease_lost = True
            run.cancel.set()  # another replica retries it: this one must stop
            emit("lease_lost", run=run.run_id)

    # -- retries -------------------------------------------------------------------------------
    def _fire_for(self, record: RunRecord, priority: int | None = None) -> Fire:
        with self._lock:
            job = self.plan.job(record.job)
        return Fire(
            job=record.job,
            scheduled_at=record.scheduled_at,
            due_at=record.scheduled_at,
            trigger=record.trigger,
            attempt=record.attempt,
            first_run_id=record.first_run_id,
            priority=priority if priority is not None else (job.priority if job else 5),
        )

    def _retry_after(self, record: RunRecord, fire: Fire) -> None:
        """Queue the next attempt of a failed or interrupted run, if its job's policy allows;
        keyed by (job, instant, attempt), so two replicas recovering the same run queue it once."""
        now = self.queue.now()
        with self._lock:
            retry = self.plan.retry(
                fire, run_id=record.first_run_id or record.run_id, failed_at=now, hold=False
            )
        if retry is None:
            return
        run_id = new_run_id()
        queued = RunRecord(
            run_id=run_id,
            job=retry.job,
            status="queued",
            trigger="retry",
            attempt=retry.attempt,
            first_run_id=retry.first_run_id or record.run_id,
            scheduled_at=retry.scheduled_at,
            requested_by=record.requested_by,
        )
        key = fire_key(retry.job, retry.scheduled_at, retry.attempt)
        if self.queue.enqueue(queued, key=key, priority=retry.priority, due_at=retry.due_at):
            delay = (retry.due_at - now) / timedelta(milliseconds=1)
            emit(
                "retry_scheduled",
                job=record.job,
                attempt=retry.attempt,
                in_ms=int(delay),
                after=record.run_id,
                run=run_id,
            )
            self.queue.notify("queued")


def _common(record: RunRecord) -> dict[str, object]:
    return {
        "run_id": record.run_id,
        "job": record.job,
        "trigger": record.trigger,
        "attempt": record.attempt,
        "first_run_id": record.first_run_id,
        "scheduled_at": record.scheduled_at,
        "host_id": record.host_id,
        "requested_by": record.requested_by,
    }
