"""An in-memory run store with the same semantics as the SQL one, for tests and the harness.

Records are kept as JSON text and parsed on every read, as the SQL store does: a caller that
mutates a returned record's ``result`` dict changes nothing stored, and whatever JSON does to a
value (tuples become lists) happens here too.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from plugbox.host.store.base import (
    DEFAULT_LIMIT,
    Clock,
    RunExistsError,
    RunLookupError,
    StoreClosedError,
    check_limits,
    system_clock,
)
from plugbox.host.store.records import (
    ACTIVE_STATUSES,
    JobStats,
    JobTally,
    PauseState,
    RunCursor,
    RunRecord,
    RunStatus,
    Trigger,
    interrupted,
    job_stats,
    utc,
)


@dataclass(frozen=True)
class _Row:
    sort_key: tuple[datetime, str]
    job: str
    status: str
    trigger: str
    host_id: str | None
    duration_ms: int | None
    text: str

    @classmethod
    def of(cls, record: RunRecord) -> _Row:
        return cls(
            (record.sort_at, record.run_id),
            record.job,
            record.status,
            record.trigger,
            record.host_id,
            record.duration_ms,
            record.model_dump_json(),
        )

    def record(self) -> RunRecord:
        return RunRecord.model_validate_json(self.text)


class MemoryRunStore:
    """:class:`~plugbox.host.store.base.RunStore` kept in a dict, guarded by one lock."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._runs: dict[str, _Row] = {}
        self._paused: dict[str, PauseState] = {}
        self._last_fire: dict[str, datetime] = {}
        self._last_success: dict[str, datetime] = {}
        self._closed = False

    def __enter__(self) -> MemoryRunStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError()

    def _newest_first(self, rows: builtins.list[_Row]) -> builtins.list[_Row]:
        return sorted(rows, key=lambda row: row.sort_key, reverse=True)

    def add(self, record: RunRecord) -> None:
        with self._lock:
            self._check_open()
            if record.run_id in self._runs:
                raise RunExistsError(record.run_id)
            self._runs[record.run_id] = _Row.of(record)
            self._note_success(record)

    def update(self, record: RunRecord) -> None:
        with self._lock:
            self._check_open()
            if record.run_id not in self._runs:
                raise RunLookupError(record.run_id)
            self._runs[record.run_id] = _Row.of(record)
            self._note_success(record)

    def _note_success(self, record: RunRecord) -> None:
        if record.status == "success" and record.finished_at is not None:
            known = self._last_success.get(record.job)
            if known is None or record.finished_at > known:
                self._last_success[record.job] = record.finished_at

    def last_successes(self) -> dict[str, datetime]:
        with self._lock:
            self._check_open()
            return dict(self._last_success)

    def get(self, run_id: str) -> RunRecord:
        with self._lock:
            self._check_open()
            row = self._runs.get(run_id)
        if row is None:
            raise RunLookupError(run_id)
        return row.record()

    def resolve_id(self, prefix: str) -> str:
        with self._lock:
            self._check_open()
            if prefix in self._runs:
                return prefix
            found = sorted(run_id for run_id in self._runs if run_id.startswith(prefix))
        if len(found) != 1 or not prefix:
            raise RunLookupError(prefix, found[:6] if len(found) > 1 else ())
        return found[0]

    def list(
        self,
        job: str | None = None,
        status: RunStatus | None = None,
        limit: int = DEFAULT_LIMIT,
        before: datetime | None = None,
        *,
        trigger: Trigger | None = None,
        since: datetime | None = None,
        cursor: RunCursor | None = None,
    ) -> builtins.list[RunRecord]:
        check_limits(limit)
        cutoff = None if before is None else utc(before, "before")
        start = None if since is None else utc(since, "since")
        below = None if cursor is None else (cursor.sort_at, cursor.run_id)
        with self._lock:
            self._check_open()
            rows = [
                row
                for row in self._runs.values()
                if (job is None or row.job == job)
                and (status is None or row.status == status)
                and (trigger is None or row.trigger == trigger)
                and (cutoff is None or row.sort_key[0] < cutoff)
                and (start is None or row.sort_key[0] >= start)
                and (below is None or row.sort_key < below)
            ]
        return [row.record() for row in self._newest_first(rows)[:limit]]

    def running(self) -> builtins.list[RunRecord]:
        with self._lock:
            self._check_open()
            rows = [row for row in self._runs.values() if row.status in ACTIVE_STATUSES]
        return [row.record() for row in self._newest_first(rows)]

    def mark_interrupted(self, host_id: str, reason: str) -> builtins.list[RunRecord]:
        now = utc(self._clock(), "clock()")
        with self._lock:
            self._check_open()
            rows = [
                row
                for row in self._runs.values()
                if row.status in ACTIVE_STATUSES and row.host_id == host_id
            ]
            changed = [interrupted(row.record(), reason, now) for row in self._newest_first(rows)]
            for record in changed:
                self._runs[record.run_id] = _Row.of(record)
        return changed

    def stats(self, job: str | None = None) -> dict[str, JobStats]:
        with self._lock:
            self._check_open()
            rows = [row for row in self._runs.values() if job is None or row.job == job]
        by_job: dict[str, builtins.list[_Row]] = {}
        for row in self._newest_first(rows):
            by_job.setdefault(row.job, []).append(row)
        result: dict[str, JobStats] = {}
        for name in sorted(by_job):
            job_rows = by_job[name]
            counts: dict[str, int] = {}
            for row in job_rows:
                counts[row.status] = counts.get(row.status, 0) + 1
            durations = [row.duration_ms for row in job_rows if row.duration_ms is not None]
            result[name] = job_stats(name, counts, job_rows[0].record(), durations)
        return result

    def tallies(self, jobs: Iterable[str] | None = None) -> dict[str, JobTally]:
        # Counted from the history every time: this store is for tests, where it is short.
        wanted = None if jobs is None else set(jobs)
        return {
            name: JobTally(job=name, counts=stats.counts, last_run=stats.last_run)
            for name, stats in self.stats().items()
            if wanted is None or name in wanted
        }

    def prune(self, older_than_days: float | None = None, keep_per_job: int | None = None) -> int:
        check_limits(0, older_than_days, keep_per_job)
        now = utc(self._clock(), "clock()")
        with self._lock:
            self._check_open()
            doomed: set[str] = set()
            if older_than_days is not None:
                cutoff = now - timedelta(days=older_than_days)
                doomed |= {
                    run_id
                    for run_id, row in self._runs.items()
                    if row.status not in ACTIVE_STATUSES and row.sort_key[0] < cutoff
                }
            if keep_per_job is not None:
                seen: dict[str, int] = {}
                for row in self._newest_first(list(self._runs.values())):
                    seen[row.job] = seen.get(row.job, 0) + 1
                    if seen[row.job] > keep_per_job and row.status not in ACTIVE_STATUSES:
                        doomed.add(row.sort_key[1])
            for run_id in doomed:
                del self._runs[run_id]
        return len(doomed)

    def set_paused(self, job: str, paused: bool, by: str | None = None) -> None:
        now = utc(self._clock(), "clock()")
        with self._lock:
            self._check_open()
            self._paused[job] = PauseState(job=job, paused=paused, changed_by=by, changed_at=now)

    def pause_state(self, job: str) -> PauseState:
        with self._lock:
            self._check_open()
            return self._paused.get(job) or PauseState(job=job, paused=False)

    def paused_jobs(self) -> set[str]:
        with self._lock:
            self._check_open()
            return {job for job, state in self._paused.items() if state.paused}

    def set_last_fire(self, job: str, when: datetime) -> None:
        when = utc(when, "when")
        with self._lock:
            self._check_open()
            self._last_fire[job] = when

    def last_fire(self, job: str) -> datetime | None:
        with self._lock:
            self._check_open()
            return self._last_fire.get(job)

    def close(self) -> None:
        with self._lock:
            self._closed = True
