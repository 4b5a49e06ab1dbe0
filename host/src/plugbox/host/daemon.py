"""``plugbox serve``: the scheduler loop, the fire queue's workers, and their lifecycle.

Composes the parts: the :class:`~plugbox.host.scheduler.Plan` decides *when* a fire is due; each
due fire is recorded at once as a ``queued`` row of the shared run store (one row per fire, however
many replicas share the database: ADR 0020); the workers of
:class:`~plugbox.host.daemon_workers.WorkerPoolMixin` claim what they can start, decide there
about concurrency and misfire, and run it in the sandbox under a lease. Signals: SIGTERM/SIGINT
stop firing, wait up to ``shutdown_grace`` for runs in flight, then cancel them (recorded
``cancelled``); fires still waiting stay queued for another replica or the next start. SIGHUP
re-scans plugins without dropping running runs. At start, and every quarter lease, runs whose
lease lapsed become ``interrupted`` and are retried where their retry policy allows.

Every decision is logged as one JSON line on stderr (``{"event": "fired", "job": ...}``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable

from plugbox.host.daemon_operations import OperationsMixin
from plugbox.host.daemon_outage import OUTAGE_ERRORS, StoreOutage
from plugbox.host.daemon_workers import RunningRun, WorkerPoolMixin
from plugbox.host.events import emit as emit
from plugbox.host.execute import new_run_id
from plugbox.host.metrics import HostMetrics, ServeSnapshot
from plugbox.host.scheduler import Clock, Fire, Plan, ScheduledJob, SystemClock
from plugbox.host.services import Host
from plugbox.host.store import RunRecord, redact
from plugbox.host.store.queue import Claimed, Enqueue, fire_key
from plugbox.host.sync import Sync
from plugbox.sdk import ScheduleError

log = logging.getLogger("plugbox.host")
_IDLE_WAKE_S = 1.0
#: Retention runs at start and then this often.
PRUNE_EVERY_S = 3600.0
#: Where ``plugbox serve`` records its pid (in the state dir) so ``plugins reload`` can signal it.
PID_FILE = "serve.pid"


class Daemon(WorkerPoolMixin, OperationsMixin):
    """One scheduling host (one replica) for the lifetime of ``plugbox serve``."""

    def __init__(
        self,
        host: Host,
        on_started: Callable[[], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        #: Called once the plugins are loaded and the workers run (``serve`` starts HTTP there).
        self.on_started = on_started
        self.clock = SystemClock() if clock is None else clock
        self.plan = Plan(self.clock)
        self.queue = host.fire_queue
        self.outage = StoreOutage()
        self._lock = threading.Lock()  # guards plan, _active and _idle
        self._ended = threading.Condition(self._lock)  # notified whenever a run ends
        self._active: dict[str, dict[str, RunningRun]] = {}
        self._handoff: queue.Queue[Claimed | None] = queue.Queue()
        self._idle = 0
        self._tick = 0.0  # time.monotonic() of the loop's last turn; 0 until started
        self._wake = threading.Event()
        self._claims = threading.Event()
        self._stopping = threading.Event()
        self._stop_signal = ""  # the name of the signal that stopped us
        self._reload = threading.Event()  # set by Sync: some replica was asked to reload
        self._reload_asked = threading.Event()  # set by SIGHUP: this one was
        self._threads: list[threading.Thread] = []
        self._workers: list[threading.Thread] = []
        self.sync = Sync(self)
        self.metrics = HostMetrics(lambda: host.store, self.snapshot)
        host.listeners.append(self.metrics.observe_run)

    # -- lifecycle ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self.host.start_webhooks(resume=True, emit=emit)
        immediate = self._load(starting=True)
        self._recover(restarted=True)
        with self._lock:
            self._idle = self.host.config.workers
        for _ in range(self.host.config.workers):
            self._workers.append(self._thread(self._work, "plugbox-worker"))
        self._threads.append(self._thread(self._dispatch_loop, "plugbox-dispatch"))
        self._threads.append(self._thread(self._renew_loop, "plugbox-lease"))
        self.sync.start()
        emit(
            "started",
            workers=self.host.config.workers,
            jobs=len(self.plan_keys()),
            workspace=str(self.host.config.workspace),
            store=redact(self.host.config.database_url),
            replica=self.queue.owner,
        )
        pid_file = self.host.config.state_dir / PID_FILE
        pid_file.write_text(f"{os.getpid()}\n")
        next_prune = 0.0
        self._enqueue(immediate)
        self._tick = time.monotonic()
        if self.on_started is not None:
            self.on_started()
        while not self._stopping.is_set():
            self._tick = time.monotonic()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + (
                    PRUNE_EVERY_S if self._prune() else _IDLE_WAKE_S * 60
                )
            if self._reload_asked.is_set():
                self._reload_asked.clear()
                self._ask_reload()
            if self._reload.is_set():
                self._reload.clear()
                self._enqueue(self._load(starting=False, rescan=True))
            with self._lock:
                wakeup = self.plan.next_wakeup()
            wait = (
                _IDLE_WAKE_S
                if wakeup is None
                else max(0.0, (wakeup - self.clock.now()).total_seconds())
            )
            self._wake.wait(min(wait, _IDLE_WAKE_S))
            self._wake.clear()
            with self._lock:
                due = self.plan.due()
            self._enqueue(due)
        emit("stopping", signal=self._stop_signal, grace_ms=self.host.config.shutdown_grace_ms)
        self._shutdown()
        with contextlib.suppress(OSError):
            pid_file.unlink()
        return 0

    @staticmethod
    def _thread(target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _prune(self) -> bool:
        """Apply retention; False when the store is away (tried again a minute later)."""
        retention = self.host.config.retention
        try:
            removed = self.host.store.prune(
                older_than_days=retention.days or None, keep_per_job=retention.per_job or None
            )
        except OUTAGE_ERRORS as err:
            self.outage.failed(err, "pruning old runs")
            return False
        if removed:
            emit("pruned", runs=removed, days=retention.days, per_job=retention.per_job)
        return True

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
        self._reload_asked.set()
        self._wake.set()

    def _ask_reload(self) -> None:
        """Make every replica re-scan its plugins, this one included (through :class:`Sync`)."""
        try:
            self.queue.signal("reload")
        except Exception:  # the database away: at least this replica reloads
            log.exception("asking the other replicas to reload failed")
            self._reload.set()

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
            queue_depth=self.queue.depth(),
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
                            priority_override=override.priority if override else None,
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

    def _enqueue(self, fires: list[Fire]) -> None:
        """Record the due fires as claimable ``queued`` rows, in one transaction; a fire another
        replica recorded first is left to that row (its key is unique). While the store is away
        the fires wait in memory (:class:`StoreOutage`) and go in with the next turn's."""
        batch = self.outage.take_fires()
        for fire in fires:
            run_id = new_run_id()
            record = RunRecord(
                run_id=run_id,
                job=fire.job,
                status="queued",
                trigger=fire.trigger,
                attempt=fire.attempt,
                first_run_id=fire.first_run_id or run_id,
                scheduled_at=fire.scheduled_at,
            )
            # Startup fires belong to this replica's start: each replica's is its own.
            key = (
                None
                if fire.trigger == "startup"
                else fire_key(fire.job, fire.scheduled_at, fire.attempt)
            )
            batch.append(Enqueue(record, key, fire.priority, fire.due_at))
        if not batch:
            return
        try:
            added = set(self.queue.enqueue_many(batch))
        except OUTAGE_ERRORS as err:
            self.outage.failed(err, f"queueing {len(batch)} fires")
            self.outage.hold_fires(batch)
            return
        except Exception:  # not an outage: a bug; these fires are lost to this replica, say so
            log.exception("queueing %d fires failed", len(batch))
            for item in batch:
                emit("queue_failed", job=item.record.job, scheduled_at=item.record.scheduled_at)
            return
        for item in batch:
            if item.record.run_id in added:
                emit(
                    "queued",
                    job=item.record.job,
                    run=item.record.run_id,
                    scheduled_at=item.record.scheduled_at,
                )
        if added:
            self._claims.set()
            with contextlib.suppress(*OUTAGE_ERRORS):  # a wake-up only: polling covers it
                self.queue.notify("queued")

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.host.config.shutdown_grace_ms / 1000
        self._claims.set()  # the dispatcher sees _stopping and ends: nothing more is claimed
        for thread in self._threads[:1]:
            thread.join(timeout=30)
        waiting: list[str] = []
        while True:
            try:
                claimed = self._handoff.get_nowait()
            except queue.Empty:
                break
            if claimed is not None:
                waiting.append(claimed.record.run_id)
                with self._lock:
                    self._active.get(claimed.record.job, {}).pop(claimed.record.run_id, None)
        try:
            self.queue.release(waiting)  # claimed but never started: back to the queue
        except OUTAGE_ERRORS as err:  # they stay running under this host id: the next start
            self.outage.failed(err, "releasing claimed fires")  # records them interrupted
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            remaining = [a for runs in self._active.values() for a in runs.values()]
        for active in remaining:
            active.cancel.set()
        for _ in self._workers:
            self._handoff.put(None)
        for worker in self._workers:
            worker.join(timeout=30)
        self._write_held(final=True)
        unrecorded = self.outage.take_fires()
        if unrecorded:  # the store's last fire did not move: the next start sees them missed
            emit(
                "fires_unrecorded",
                count=len(unrecorded),
                reason="the run store was away when serve stopped; the job's misfire policy"
                " decides about these fires at the next start",
            )
        self.sync.stop()
        emit("stopped", cancelled_in_flight=len(remaining), released_queued=len(waiting))

    def _busy(self) -> bool:
        with self._lock:
            return any(self._active.values())
