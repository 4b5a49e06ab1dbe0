"""``plugbox serve``: the scheduler loop, a bounded worker pool, and their lifecycle.

Composes the parts: the :class:`~plugbox.host.scheduler.Plan` decides *when*, the concurrency
policy decides *whether*, a priority queue feeds ``workers`` threads that :func:`execute` runs in
the sandbox, and the store keeps every decision. Signals: SIGTERM/SIGINT stop firing, wait up to
``shutdown_grace`` for runs in flight, then cancel them (recorded ``cancelled``); SIGHUP re-scans
plugins without dropping running runs. At start, runs a killed host left ``running`` become
``interrupted`` and are retried where their retry policy allows.

Every decision is logged as one JSON line on stderr (``{"event": "fired", "job": ...}``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from plugbox.host.daemon_operations import OperationsMixin
from plugbox.host.daemon_operations import RunningRun as _Active
from plugbox.host.events import emit as emit
from plugbox.host.execute import RunPlan, host_failure, new_run_id
from plugbox.host.metrics import HostMetrics, ServeSnapshot
from plugbox.host.scheduler import Fire, Plan, ScheduledJob, SystemClock
from plugbox.host.services import Host
from plugbox.host.store import RunRecord, redact
from plugbox.sdk import ScheduleError
from plugbox.sdk.firing import concurrency_decision

log = logging.getLogger("plugbox.host")
_IDLE_WAKE_S = 1.0
#: Retention runs at start and then this often.
PRUNE_EVERY_S = 3600.0
#: Where ``plugbox serve`` records its pid (in the state dir) so ``plugins reload`` can signal it.
PID_FILE = "serve.pid"
_FAILED = {"failed", "timeout", "killed", "interrupted"}


class Daemon(OperationsMixin):
    """One scheduling host for the lifetime of ``plugbox serve``."""

    def __init__(self, host: Host, on_started: Callable[[], None] | None = None) -> None:
        self.host = host
        #: Called once the plugins are loaded and the workers run (``serve`` starts HTTP there).
        self.on_started = on_started
        self.plan = Plan(SystemClock())
        self._lock = threading.Lock()  # guards plan, _active and _queued
        self._ended = threading.Condition(self._lock)  # notified whenever a run ends
        self._active: dict[str, dict[str, _Active]] = {}
        #: manual runs recorded ``queued`` and not yet taken by a worker
        self._queued: set[str] = set()
        self._tick = 0.0  # time.monotonic() of the loop's last turn; 0 until started
        self._queue: queue.PriorityQueue[tuple[int, int, Fire | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stop_signal = ""  # the name of the signal that stopped us
        self._reload = threading.Event()
        self._workers: list[threading.Thread] = []
        self.metrics = HostMetrics(lambda: host.store, self.snapshot)
        host.listeners.append(self.metrics.observe_run)

    # -- lifecycle ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self.host.start_webhooks(resume=True, emit=emit)
        store = self.host.store
        store.claim_scheduler()  # SchedulerTakenError: another serve fires from this store
        recovered = store.mark_interrupted(
            self.host.config.host_id, "the host stopped while the run was active"
        )
        immediate = self._load(starting=True)
        for record in recovered:
            emit("interrupted", job=record.job, run=record.run_id)
            self._retry_after(record, self._fire_for(record))
        for _ in range(self.host.config.workers):
            worker = threading.Thread(target=self._work, name="plugbox-worker", daemon=True)
            worker.start()
            self._workers.append(worker)
        emit(
            "started",
            workers=self.host.config.workers,
            jobs=len(self.plan_keys()),
            workspace=str(self.host.config.workspace),
            store=redact(self.host.config.database_url),
        )
        pid_file = self.host.config.state_dir / PID_FILE
        pid_file.write_text(f"{os.getpid()}\n")
        next_prune = 0.0
        self._dispatch(immediate)
        self._tick = time.monotonic()
        if self.on_started is not None:
            self.on_started()
        while not self._stopping.is_set():
            self._tick = time.monotonic()
            if time.monotonic() >= next_prune:
                self._prune()
                next_prune = time.monotonic() + PRUNE_EVERY_S
            if self._reload.is_set():
                self._reload.clear()
                self._dispatch(self._load(starting=False, rescan=True))
            with self._lock:
                wakeup = self.plan.next_wakeup()
            wait = (
                _IDLE_WAKE_S
                if wakeup is None
                else max(0.0, (wakeup - datetime.now(UTC)).total_seconds())
            )
            self._wake.wait(min(wait, _IDLE_WAKE_S))
            self._wake.clear()
            with self._lock:
                due = self.plan.due()
            self._dispatch(due)
        emit("stopping", signal=self._stop_signal, grace_ms=self.host.config.shutdown_grace_ms)
        self._shutdown()
        with contextlib.suppress(OSError):
            pid_file.unlink()
        return 0

    def _prune(self) -> None:
        retention = self.host.config.retention
        removed = self.host.store.prune(
            older_than_days=retention.days or None, keep_per_job=retention.per_job or None
        )
        if removed:
            emit("pruned", runs=removed, days=retention.days, per_job=retention.per_job)

    def _on_stop(self, signum: int, _frame: object) -> None:
        # Nothing is written here: the signal can land while the main thread is inside a write
        # to stderr, and writing again from the handler raises "reentrant call" and kills serve.
        # The loop says "stopping" once it wakes.
        if self._stopping.is_set():
            return
        self._stop_signal = signal.Signals(signum).name
        self._stopping.set()
        self._wake.set()

    def _on_reload(self, _signum: int, _frame: object) -> None:
        self._reload.set()
        self._wake.set()

    def plan_keys(self) -> list[str]:
        return [f"{p.manifest.id}:{j.id}" for p in self.host.plugins for j in p.manifest.jobs]

    def snapshot(self) -> ServeSnapshot:
        """The scheduler's state for a metrics scrape; never starts discovery itself."""
        discovered = "discovery" in self.host.__dict__
        keys = self.plan_keys() if discovered else []
        with self._lock:
            fires = {key: self.plan.next_fire(key) for key in keys}
            busy = sum(len(runs) for runs in self._active.values())
        return ServeSnapshot(
            queue_depth=self._queue.qsize(),
            workers_busy=busy,
            next_fires={key: fire.due_at for key, fire in fires.items() if fire is not None},
            plugins_loaded=len(self.host.plugins) if discovered else 0,
            plugin_load_errors=len(self.host.problems) if discovered else 0,
        )

    def _load(self, *, starting: bool, rescan: bool = False) -> list[Fire]:
        if rescan:
            self.host.__dict__.pop("discovery", None)
            emit("reloaded", plugins=[p.manifest.id for p in self.host.plugins])
        for problem in self.host.problems:
            emit("plugin_skipped", plugin=problem.entry_point.describe(), reason=problem.reason)
        jobs = []
        for plugin in self.host.plugins:
            for spec in plugin.manifest.jobs:
                override = self.host.config.job_override(plugin.manifest.id, spec.id)
                try:
                    jobs.append(
                        ScheduledJob.from_spec(
                            plugin.manifest.id,
                            spec,
                            schedule_override=override.schedule if override else None,
                            timezone_override=override.timezone if override else None,
                            enabled_override=override.enabled if override else None,
                            env=dict(os.environ),
                        )
                    )
                except ScheduleError as err:
                    emit("job_skipped", job=f"{plugin.manifest.id}:{spec.id}", reason=str(err))
        store = self.host.store
        with self._lock:
            return self.plan.load(
                jobs, last_fire=store.last_fire, paused=store.paused_jobs(), starting=starting
            )

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.host.config.shutdown_grace_ms / 1000
        dropped = 0
        while True:
            try:
                _, _, fire = self._queue.get_nowait()
            except queue.Empty:
                break
            if fire is not None:
                self._record_not_started(
                    fire, "cancelled", "the host shut down before the run started"
                )
                dropped += 1
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            remaining = [a for runs in self._active.values() for a in runs.values()]
        for active in remaining:
            active.cancel.set()
        for _ in self._workers:
            self._queue.put((sys.maxsize, next(self._order), None))
        for worker in self._workers:
            worker.join(timeout=30)
        emit("stopped", cancelled_in_flight=len(remaining), dropped_queued=dropped)

    def _busy(self) -> bool:
        with self._lock:
            return any(self._active.values())

    # -- decisions ------------------------------------------------------------------------------
    def _dispatch(self, fires: list[Fire]) -> None:
        for fire in fires:
            if self._stopping.is_set():
                self._record_not_started(fire, "cancelled", "the host was shutting down")
                continue
            with self._lock:
                job = self.plan.job(fire.job)
                active = self._active.get(fire.job, {})
                decision = concurrency_decision(job.concurrency if job else "forbid", len(active))
                replaced = list(active.values()) if decision == "replace" else []
            if decision == "skip":
                self._record_not_started(
                    fire, "skipped", "the previous run is still active (concurrency=forbid)"
                )
                continue
            for old in replaced:
                emit("replacing", job=fire.job, run=old.run_id)
                old.cancel.set()
            self._queue.put((-fire.priority, next(self._order), fire))

    def _record_not_started(self, fire: Fire, status: str, reason: str) -> None:
        run_id = fire.run_id or new_run_id()
        now = datetime.now(UTC)
        record = RunRecord(
            run_id=run_id,
            job=fire.job,
            status=status,
            trigger=fire.trigger,
            attempt=fire.attempt,
            first_run_id=fire.first_run_id or run_id,
            scheduled_at=fire.scheduled_at,
            finished_at=now,
            reason=reason,
            host_id=self.host.config.host_id,
            requested_by=fire.requested_by,
        )
        if fire.run_id is None:
            self.host.store.add(record)
        else:  # a manual run the API already answered with, recorded queued
            with self._lock:
                if run_id not in self._queued:
                    return  # cancelled through the API while it waited: recorded then
                self._queued.discard(run_id)
            self.host.store.update(record)
        self.host.finished(record)
        with self._ended:
            self._ended.notify_all()
        emit(status, job=fire.job, run=run_id, reason=reason)

    def _work(self) -> None:
        while True:
            _, _, fire = self._queue.get()
            if fire is None:
                return
            # Nothing raised for one fire may end this worker: the pool would shrink for good
            # and every later fire would wait behind the ones left.
            try:
                if self._stopping.is_set():
                    self._record_not_started(
                        fire, "cancelled", "the host shut down before the run started"
                    )
                    continue
                self._run(fire)
            except Exception:
                log.exception("a worker failed handling a fire of %s", fire.job)
                emit("worker_error", job=fire.job)

    def _run(self, fire: Fire) -> None:
        self.metrics.observe_lag((datetime.now(UTC) - fire.due_at).total_seconds())
        plugin_id, _, job_id = fire.job.partition(":")
        try:
            plugin = self.host.plugin(plugin_id)
        except LookupError as err:
            self._record_not_started(fire, "skipped", str(err))
            return
        run_id = fire.run_id or new_run_id()
        active = _Active(run_id)
        with self._lock:
            if fire.run_id is not None:
                if run_id not in self._queued:
                    return  # cancelled while it waited; cancel() recorded it
                self._queued.discard(run_id)
            self._active.setdefault(fire.job, {})[run_id] = active
        if fire.trigger == "schedule":
            # Written by the worker, not the dispatch loop: a burst of fires is dispatched without
            # waiting on one database write each. A host that dies before this line treats the
            # fire as missed at its next start, and its misfire policy decides.
            self.host.store.set_last_fire(fire.job, fire.scheduled_at)
        emit(
            "fired",
            job=fire.job,
            run=run_id,
            trigger=fire.trigger,
            attempt=fire.attempt,
            scheduled_at=fire.scheduled_at,
        )
        try:
            previous = self.host.store.tallies([fire.job]).get(fire.job)
            record = self.host.execute(
                RunPlan(
                    plugin=plugin,
                    job_id=job_id,
                    trigger=fire.trigger,
                    attempt=fire.attempt,
                    first_run_id=fire.first_run_id,
                    scheduled_at=fire.scheduled_at,
                    run_count=(previous.total if previous else 0) + 1,
                    requested_by=fire.requested_by,
                ),
                run_id=run_id,
                cancel=active.cancel,
                queued=fire.run_id is not None,
            )
            if active.cancelled_by is not None and record.status == "cancelled":
                record = record.model_copy(
                    update={
                        "cancelled_by": active.cancelled_by,
                        "reason": f"cancelled by {active.cancelled_by} through the HTTP API",
                    }
                )
                self.host.store.update(record)
        except Exception as exc:
            log.exception("running %s (run %s) failed in the host", fire.job, run_id)
            record = self._record_host_failure(fire, run_id, exc)
        finally:
            with self._ended:
                self._active.get(fire.job, {}).pop(run_id, None)
                self._ended.notify_all()
        emit(
            "finished",
            job=fire.job,
            run=run_id,
            status=record.status,
            ms=record.duration_ms,
            reason=record.kill_reason or (record.error.type if record.error else None),
        )
        if record.status in _FAILED and not self._stopping.is_set():
            self._retry_after(record, fire)
        self._wake.set()

    def _record_host_failure(self, fire: Fire, run_id: str, exc: Exception) -> RunRecord:
        """Finish ``run_id`` as failed because the host itself failed (never left ``running``)."""
        store = self.host.store
        try:
            existing: RunRecord | None = store.get(run_id)
        except LookupError:
            existing = None
        common = {
            "run_id": run_id,
            "job": fire.job,
            "trigger": fire.trigger,
            "attempt": fire.attempt,
            "first_run_id": fire.first_run_id or run_id,
            "scheduled_at": fire.scheduled_at,
            "host_id": self.host.config.host_id,
            "requested_by": fire.requested_by,
        }
        started = existing.started_at if existing and existing.started_at else datetime.now(UTC)
        record = host_failure(common, started, exc)
        if existing is not None:
            store.update(record)
        else:
            store.add(record)
        self.host.finished(record)
        return record

    def _fire_for(self, record: RunRecord) -> Fire:
        with self._lock:
            job = self.plan.job(record.job)
        return Fire(
            job=record.job,
            scheduled_at=record.scheduled_at,
            due_at=datetime.now(UTC),
            trigger=record.trigger if record.trigger != "manual" else "schedule",
            attempt=record.attempt,
            first_run_id=record.first_run_id,
            priority=job.priority if job else 5,
        )

    def _retry_after(self, record: RunRecord, fire: Fire) -> None:
        with self._lock:
            retry = self.plan.retry(
                fire, run_id=record.first_run_id or record.run_id, failed_at=datetime.now(UTC)
            )
        if retry is not None:
            delay = (retry.due_at - datetime.now(UTC)) / timedelta(milliseconds=1)
            emit(
                "retry_scheduled",
                job=record.job,
                attempt=retry.attempt,
                in_ms=int(delay),
                after=record.run_id,
            )
            self._wake.set()
