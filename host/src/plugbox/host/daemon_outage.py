"""When the run store stops answering: what ``plugbox serve`` keeps in memory, and what it says.

The database can be away for a while — PostgreSQL restarted, a SQLite file locked by another
writer past the busy timeout, the disk holding it full (ADR 0034). ``serve`` neither dies nor
drops an outcome on the floor:

- a run that ends while the store refuses writes keeps its outcome here, with the lease epoch its
  fenced write needs; the dispatcher writes what is held (oldest first) before it claims or
  recovers anything, so this process never recovers its own run over an outcome it holds;
- the fires the scheduler loop could not record wait here too, and are recorded on its next turn
  (the misfire policy then decides about them when they start, as for any fire that waited);
- the operator sees it: one ``store_unavailable`` line when the store goes, one
  ``store_available`` line when it is back, and ``/readyz`` answers 503 naming the condition
  meanwhile.

:class:`StoreOutage` is the state; :class:`HeldWritesMixin` (part of the daemon's worker pool)
writes what it holds. Both buffers are bounded: past :data:`HOLD_MAX` an outcome is dropped with an ``outcome_dropped``
line naming the run (the next start records it ``interrupted``, as for a killed host). Never
silently.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exc

from plugbox.host.events import emit
from plugbox.host.scheduler import Fire
from plugbox.host.store import RunRecord
from plugbox.host.store.queue import Enqueue, FireQueue

#: The errors that mean "the database is away", not "this statement is wrong": locked, full,
#: connection refused or cut (all ``OperationalError``), a dead driver connection, a pool that
#: cannot hand out a connection. Anything else is a bug and is raised as before.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
)
#: The statuses a job's retry policy answers (a retry is queued when ``retries`` allows).
FAILED_STATUSES = frozenset({"failed", "timeout", "killed", "interrupted"})
#: The most outcomes (and, separately, unrecorded fires) kept in memory while the store is away.
HOLD_MAX = 10_000


def condition(err: BaseException) -> str:
    """What is wrong with the store, in the operator's words, from the driver's error."""
    text = str(getattr(err, "orig", None) or err).strip()
    lowered = text.lower()
    if "locked" in lowered or "lock timeout" in lowered:
        return "the database is locked by another writer"
    if "disk is full" in lowered or "no space left" in lowered:
        return "the disk holding the database is full"
    if any(
        sign in lowered
        for sign in (
            "connection refused",
            "could not connect",
            "server closed the connection",
            "terminating connection",
            "no such file or directory",
            "the database system is",
            "connection is closed",
            "connection failed",
        )
    ):
        return "the database server does not answer (stopped, restarting or unreachable)"
    return text.splitlines()[0][:200] if text else type(err).__name__


@dataclass(frozen=True, slots=True)
class HeldOutcome:
    """A run's final record this process could not store yet, and the lease it was run under."""

    record: RunRecord
    epoch: int
    since: float  # time.monotonic() when it was held


class StoreOutage:
    """Whether the store refuses this process's writes, since when and why; what waits on it."""

    def __init__(self, hold_max: int = HOLD_MAX) -> None:
        self._lock = threading.Lock()
        self._hold_max = hold_max
        self._since: float | None = None  # time.monotonic() of the first failure
        self._since_at: datetime | None = None
        self._condition = ""
        self._held: deque[HeldOutcome] = deque()
        self._fires: list[Enqueue] = []
        self._written = 0  # outcomes written after being held, during this outage

    # -- the condition ---------------------------------------------------------------------
    def failed(self, err: BaseException, doing: str) -> None:
        """The store refused ``doing``: say so once, when the outage starts."""
        what = condition(err)
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
                self._since_at = datetime.now(UTC)
                self._written = 0
            self._condition = what
        if first:
            emit(
                "store_unavailable",
                condition=what,
                doing=doing,
                error=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}",
            )

    def answered(self) -> None:
        """A write went through and nothing waits: if the store was away, say it is back."""
        with self._lock:
            if self._since is None or self._held or self._fires:
                return
            down_ms = int((time.monotonic() - self._since) * 1000)
            written, self._written = self._written, 0
            self._since = self._since_at = None
            self._condition = ""
        emit("store_available", down_ms=down_ms, outcomes_written=written)

    @property
    def down(self) -> bool:
        with self._lock:
            return self._since is not None

    def problem(self) -> str | None:
        """The ``/readyz`` detail while the store is away; None when it answers."""
        with self._lock:
            if self._since_at is None:
                return None
            return (
                f"the run store refuses writes since {self._since_at:%H:%M:%S} UTC"
                f" ({self._condition}); {len(self._held)} run outcomes and {len(self._fires)}"
                " fires are held in memory and will be written when it is back"
            )

    # -- outcomes --------------------------------------------------------------------------
    def hold(self, record: RunRecord, epoch: int) -> bool:
        """Keep ``record`` until the store answers; False (and a line saying so) when full."""
        with self._lock:
            if len(self._held) < self._hold_max:
                self._held.append(HeldOutcome(record, epoch, time.monotonic()))
                return True
        emit(
            "outcome_dropped",
            job=record.job,
            run=record.run_id,
            status=record.status,
            reason=f"{self._hold_max} outcomes are held already while the store is away; the"
            " run stays recorded as running and the next start records it interrupted",
        )
        return False

    def held(self) -> list[HeldOutcome]:
        """The outcomes waiting, oldest first (left in place until :meth:`written`)."""
        with self._lock:
            return list(self._held)

    def written(self, held: HeldOutcome) -> None:
        with self._lock:
            self._held.remove(held)
            self._written += 1

    # -- fires -----------------------------------------------------------------------------
    def hold_fires(self, fires: list[Enqueue]) -> None:
        """Keep fires the scheduler could not record; past the bound, the oldest go, named."""
        with self._lock:
            self._fires.extend(fires)
            overflow = self._fires[: max(0, len(self._fires) - self._hold_max)]
            del self._fires[: len(overflow)]
        for item in overflow:
            emit(
                "fire_dropped",
                job=item.record.job,
                scheduled_at=item.record.scheduled_at,
                reason="too many fires waited for the store to come back",
            )

    def take_fires(self) -> list[Enqueue]:
        with self._lock:
            fires, self._fires = self._fires, []
        return fires


class HeldWritesMixin:
    """Writing what was held, on the daemon's state (a mixin of the worker pool)."""

    queue: FireQueue
    outage: StoreOutage
    _stopping: threading.Event

    def _retry_after(self, record: RunRecord, fire: Fire) -> None:
        raise NotImplementedError  # the worker pool's

    def _fire_for(self, record: RunRecord, priority: int | None = None) -> Fire:
        raise NotImplementedError  # the worker pool's

    def _write_held(self, *, final: bool = False) -> None:
        """Write the outcomes held while the store was away, oldest first; then queue the
        retries their job's policy asks for. ``final`` (serve stops): what cannot be written
        now is named, and recorded ``interrupted`` by the next start."""
        for held in self.outage.held():
            record = held.record
            try:
                stored = self.queue.finish(record, held.epoch)
            except OUTAGE_ERRORS as err:
                if not final:
                    raise
                self.outage.failed(err, "writing held outcomes at shutdown")
                left = self.outage.held()
                emit("outcomes_unwritten", runs=[h.record.run_id for h in left], count=len(left))
                return
            self.outage.written(held)
            waited = int((time.monotonic() - held.since) * 1000)
            if not stored:  # recovered by another replica meanwhile: its record stands
                emit("lease_lost", job=record.job, run=record.run_id, held_ms=waited)
                continue
            emit("outcome_written", job=record.job, run=record.run_id, status=record.status,
                 held_ms=waited)  # fmt: skip
            if record.status in FAILED_STATUSES and not self._stopping.is_set():
                self._retry_after(record, self._fire_for(record))
