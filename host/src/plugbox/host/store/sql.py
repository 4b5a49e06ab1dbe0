"""The run store on SQLAlchemy 2 Core: SQLite (WAL) by default, or PostgreSQL (psycopg 3).

Queries use only portable Core constructs (window functions included: SQLite has them since
3.25). Where the two databases differ, :mod:`plugbox.host.store.dialect` decides.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError, OperationalError

from plugbox.host.store import dialect
from plugbox.host.store.base import (
    DEFAULT_LIMIT,
    Clock,
    RunExistsError,
    RunLookupError,
    StoreClosedError,
    StoreUnavailableError,
    check_limits,
    system_clock,
)
from plugbox.host.store.migrations import upgrade
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

#: How long opening a store keeps retrying a locked SQLite file (another process creating it).
OPEN_RETRY_S = 10.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ACTIVE = sorted(ACTIVE_STATUSES)

# The schema as of migrations.LATEST_VERSION, for queries only; migrations create it.
metadata = MetaData()
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("job", String(255), nullable=False),
    Column("plugin_id", String(255), nullable=False),
    Column("job_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("first_run_id", String(64), nullable=False),
    Column("scheduled_at_us", BigInteger, nullable=False),
    Column("started_at_us", BigInteger),
    Column("finished_at_us", BigInteger),
    Column("sort_at_us", BigInteger, nullable=False),
    Column("duration_ms", BigInteger),
    Column("result", JSON),
    Column("error", JSON),
    Column("kill_reason", String(32)),
    Column("peak_memory_mb", Float),
    Column("cpu_ms", BigInteger),
    Column("events", JSON, nullable=False),
    Column("events_truncated", Boolean, nullable=False),
    Column("log", JSON, nullable=False),
    Column("log_truncated", Boolean, nullable=False),
    Column("output", Text, nullable=False),
    Column("output_truncated", Boolean, nullable=False),
    Column("enforcement", JSON),
    Column("reason", Text),
    Column("host_id", String(255)),
    Column("denials", JSON),
    Column("requested_by", String(255)),
    Column("cancelled_by", String(255)),
    # The fire queue's columns (migration 5); only plugbox.host.store.queue reads or writes them.
    Column("fire_key", String(320)),
    Column("priority", Integer),
    Column("due_at_us", BigInteger),
    Column("lease_owner", String(255)),
    Column("lease_until_us", BigInteger),
    Column("lease_epoch", Integer),
)
job_state = Table(
    "job_state",
    metadata,
    Column("job", String(255), primary_key=True),
    Column("paused", Boolean, nullable=False),
    Column("last_fire_us", BigInteger),
    Column("paused_by", String(255)),
    Column("paused_changed_at_us", BigInteger),
    Column("last_success_us", BigInteger),
)
serve_signals = Table(
    "serve_signals",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

# Runs per job and status, changed in the transaction of every write (ADR 0030).
job_tallies = Table(
    "job_tallies",
    metadata,
    Column("job", String(255), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("runs", BigInteger, nullable=False),
)

_PLAIN = (
    "run_id",
    "job",
    "plugin_id",
    "job_id",
    "status",
    "trigger",
    "attempt",
    "first_run_id",
    "duration_ms",
    "result",
    "error",
    "kill_reason",
    "peak_memory_mb",
    "cpu_ms",
    "events",
    "events_truncated",
    "log",
    "log_truncated",
    "output",
    "output_truncated",
    "enforcement",
    "reason",
    "host_id",
    "denials",
    "requested_by",
    "cancelled_by",
)
_TIMES = ("scheduled_at", "started_at", "finished_at")


def to_us(value: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact; no float rounding)."""
    return (utc(value) - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _to_row(record: RunRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json", include=set(_PLAIN))
    for name in _TIMES:
        value: datetime | None = getattr(record, name)
        data[f"{name}_us"] = None if value is None else to_us(value)
    data["sort_at_us"] = to_us(record.sort_at)
    return data


def _from_row(row: RowMapping) -> RunRecord:
    data = {name: row[name] for name in _PLAIN}
    data["denials"] = data["denials"] or ()  # null: written before denials were recorded
    for name in _TIMES:
        value = row[f"{name}_us"]
        data[name] = None if value is None else from_us(value)
    return RunRecord.model_validate(data)


def _note_success(conn: Connection, record: RunRecord) -> None:
    """Keep ``job_state.last_success_us`` in the transaction that records the success, so it is
    true for every process writing runs and a scrape reads one row per job (ADR 0014)."""
    if record.status != "success" or record.finished_at is None:
        return
    when = to_us(record.finished_at)
    # CASE, not two-argument max(): portable, and a NULL (never succeeded) compares false.
    latest = job_state.c.last_success_us
    later = case((latest >= when, latest), else_=when)
    done = conn.execute(
        update(job_state).where(job_state.c.job == record.job).values(last_success_us=later)
    )
    if done.rowcount == 0:
        # The job's first row; an upsert, as another process may be adding it right now.
        dialect.upsert(
            conn,
            job_state,
            {"job": record.job, "last_success_us": when},
            defaults={"paused": False},
        )


def _tally(conn: Connection, job: str, old: str | None, new: str | None) -> None:
    """Move one run of ``job`` from status ``old`` to ``new`` in ``job_tallies`` (None: the run
    is new, or gone), in the caller's transaction, so the tallies agree with the runs table for
    every process writing to it."""
    if old == new:
        return
    if old is not None:
        dialect.increment(conn, job_tallies, {"job": job, "status": old}, "runs", -1)
    if new is not None:
        dialect.increment(conn, job_tallies, {"job": job, "status": new}, "runs", 1)


def _untally(conn: Connection, *where: Any) -> None:
    """Take the runs matching ``where`` out of the tallies; called just before deleting them."""
    doomed = select(runs.c.job, runs.c.status, func.count()).where(*where)
    for job, status, count in conn.execute(doomed.group_by(runs.c.job, runs.c.status)):
        dialect.increment(conn, job_tallies, {"job": job, "status": status}, "runs", -count)


class SqlRunStore:
    """:class:`~plugbox.host.store.base.RunStore` in a SQL database: ``sqlite:///plugbox.db`` or
    ``postgresql://user:password@host/database``.

    One engine (connection pool) per store; every call takes its own connection, so one store may
    be shared by a pool of worker threads. Opening applies any pending schema migrations, and
    raises :class:`StoreUnavailableError` when the database cannot be reached.
    """

    def __init__(self, url: str, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._shown_url = dialect.redact(url)  # as the operator wrote it, password masked
        parsed = dialect.parse_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ValueError(
                f"{url!r} is an in-memory SQLite database, which each connection sees empty; "
                "give a file path, or use MemoryRunStore"
            )
        self._engine = dialect.create(parsed)
        self._snapshot = dialect.snapshot_reader(self._engine)
        self._writer = dialect.writer(self._engine)
        self._closed = False
        try:
            self._upgrade()
        except OperationalError as err:
            self._engine.dispose()
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            if parsed.password:
                reason = reason.replace(str(parsed.password), "***")
            raise StoreUnavailableError(self._shown_url, reason) from None
        except BaseException:
            self._engine.dispose()
            raise

    def _upgrade(self) -> None:
        # Two processes opening a new SQLite file at once (``plugbox serve`` starting while a CLI
        # command reads) can meet SQLite's "database is locked" while one of them switches the
        # file to WAL, which busy_timeout does not always cover; the schema work itself is one
        # IMMEDIATE transaction, so trying again is safe.
        deadline = time.monotonic() + OPEN_RETRY_S
        while True:
            try:
                upgrade(self._writer)
                return
            except OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                self._engine.dispose()
                time.sleep(0.05)

    def __enter__(self) -> SqlRunStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._engine

    def _read(self, snapshot: bool = False) -> Connection:
        if self._closed:
            raise StoreClosedError()
        return (self._snapshot if snapshot else self._engine).connect()

    def _write(self) -> Any:
        if self._closed:
            raise StoreClosedError()
        return self._writer.begin()

    def add(self, record: RunRecord) -> None:
        try:
            with self._write() as conn:
                conn.execute(insert(runs).values(_to_row(record)))
                _tally(conn, record.job, None, record.status)
                _note_success(conn, record)
        except IntegrityError as err:
            raise RunExistsError(record.run_id) from err

    def update(self, record: RunRecord) -> None:
        with self._write() as conn:
            # The status it had, read in this transaction (and locked, on PostgreSQL) so the
            # tallies move it from exactly there.
            before = conn.execute(
                select(runs.c.job, runs.c.status)
                .where(runs.c.run_id == record.run_id)
                .with_for_update()
            ).first()
            if before is None:
                raise RunLookupError(record.run_id)
            conn.execute(update(runs).where(runs.c.run_id == record.run_id).values(_to_row(record)))
            _tally(conn, before.job, before.status, None)
            _tally(conn, record.job, None, record.status)
            _note_success(conn, record)

    def get(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
        if row is None:
            raise RunLookupError(run_id)
        return _from_row(row)

    def resolve_id(self, prefix: str) -> str:
        with self._read() as conn:
            if conn.execute(select(runs.c.run_id).where(runs.c.run_id == prefix)).first():
                return prefix
            query = (
                select(runs.c.run_id)
                .where(dialect.prefix_match(conn, runs.c.run_id, prefix))
                .order_by(runs.c.run_id)
                .limit(6)
            )
            found = list(conn.execute(query).scalars())
        if len(found) != 1 or not prefix:
            raise RunLookupError(prefix, found if len(found) > 1 else ())
        return str(found[0])

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
        query = select(runs).order_by(runs.c.sort_at_us.desc(), runs.c.run_id.desc()).limit(limit)
        if job is not None:
            query = query.where(runs.c.job == job)
        if status is not None:
            query = query.where(runs.c.status == status)
        if trigger is not None:
            query = query.where(runs.c.trigger == trigger)
        if before is not None:
            query = query.where(runs.c.sort_at_us < to_us(utc(before, "before")))
        if since is not None:
            query = query.where(runs.c.sort_at_us >= to_us(utc(since, "since")))
        if cursor is not None:
            at = to_us(cursor.sort_at)
            query = query.where(
                or_(
                    runs.c.sort_at_us < at,
                    and_(runs.c.sort_at_us == at, runs.c.run_id < cursor.run_id),
                )
            )
        with self._read() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    def running(self) -> builtins.list[RunRecord]:
        query = (
            select(runs)
            .where(runs.c.status.in_(_ACTIVE))
            .order_by(runs.c.sort_at_us.desc(), runs.c.run_id.desc())
        )
        with self._read() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    def mark_interrupted(self, host_id: str, reason: str) -> builtins.list[RunRecord]:
        now = utc(self._clock(), "clock()")
        query = (
            select(runs)
            .where(runs.c.status.in_(_ACTIVE), runs.c.host_id == host_id)
            .order_by(runs.c.sort_at_us.desc(), runs.c.run_id.desc())
        )
        with self._write() as conn:
            found = [_from_row(row) for row in conn.execute(query).mappings()]
            changed = [interrupted(record, reason, now) for record in found]
            for old, record in zip(found, changed, strict=True):
                conn.execute(
                    update(runs).where(runs.c.run_id == record.run_id).values(_to_row(record))
                )
                _tally(conn, record.job, old.status, record.status)
        return changed

    def stats(self, job: str | None = None) -> dict[str, JobStats]:
        where = [] if job is None else [runs.c.job == job]
        counts_query = (
            select(runs.c.job, runs.c.status, func.count())
            .where(*where)
            .group_by(runs.c.job, runs.c.status)
        )
        durations_query = select(runs.c.job, runs.c.duration_ms).where(
            runs.c.duration_ms.is_not(None), *where
        )
        newest = (
            func.row_number()
            .over(
                partition_by=runs.c.job,
                order_by=(runs.c.sort_at_us.desc(), runs.c.run_id.desc()),
            )
            .label("newest")
        )
        ranked = select(runs, newest).where(*where).subquery()
        last_query = select(ranked).where(ranked.c.newest == 1)

        counts: dict[str, dict[str, int]] = {}
        durations: dict[str, builtins.list[int]] = {}
        with self._read(snapshot=True) as conn:  # one transaction: one consistent snapshot
            for name, status, count in conn.execute(counts_query):
                counts.setdefault(name, {})[status] = count
            for name, duration in conn.execute(durations_query):
                durations.setdefault(name, []).append(duration)
            last = {row["job"]: _from_row(row) for row in conn.execute(last_query).mappings()}
        return {
            name: job_stats(name, counts[name], last.get(name), durations.get(name, []))
            for name in sorted(counts)
        }

    def tallies(self, jobs: Iterable[str] | None = None) -> dict[str, JobTally]:
        where = [] if jobs is None else [job_tallies.c.job.in_(list(jobs))]
        counts_query = select(job_tallies).where(job_tallies.c.runs > 0, *where)
        # The newest run of each job tallied: one descent of ix_runs_job_sort_at per job, never
        # a pass over the history.
        tallied = select(job_tallies.c.job).where(*where).distinct().subquery()
        newest = (
            select(runs.c.run_id)
            .where(runs.c.job == tallied.c.job)
            .order_by(runs.c.sort_at_us.desc(), runs.c.run_id.desc())
            .limit(1)
            .scalar_subquery()
        )
        last_query = select(runs).where(runs.c.run_id.in_(select(newest).select_from(tallied)))
        counts: dict[str, dict[str, int]] = {}
        with self._read(snapshot=True) as conn:  # one transaction: one consistent snapshot
            for row in conn.execute(counts_query):
                counts.setdefault(row.job, {})[row.status] = row.runs
            last = {row["job"]: _from_row(row) for row in conn.execute(last_query).mappings()}
        return {
            name: JobTally(job=name, counts=counts[name], last_run=last.get(name))
            for name in sorted(counts)
        }

    def prune(self, older_than_days: float | None = None, keep_per_job: int | None = None) -> int:
        check_limits(0, older_than_days, keep_per_job)
        now = utc(self._clock(), "clock()")
        finished = runs.c.status.not_in(_ACTIVE)
        removed = 0
        with self._write() as conn:
            if older_than_days is not None:
                cutoff = to_us(now - timedelta(days=older_than_days))
                _untally(conn, finished, runs.c.sort_at_us < cutoff)
                done = conn.execute(delete(runs).where(finished, runs.c.sort_at_us < cutoff))
                removed += done.rowcount
            if keep_per_job is not None:
                rank = (
                    func.row_number()
                    .over(
                        partition_by=runs.c.job,
                        order_by=(runs.c.sort_at_us.desc(), runs.c.run_id.desc()),
                    )
                    .label("rank")
                )
                ranked = select(runs.c.run_id, rank).subquery()
                beyond = select(ranked.c.run_id).where(ranked.c.rank > keep_per_job)
                _untally(conn, finished, runs.c.run_id.in_(beyond))
                done = conn.execute(delete(runs).where(finished, runs.c.run_id.in_(beyond)))
                removed += done.rowcount
        return removed

    def _set_job_state(self, job: str, **values: Any) -> None:
        with self._write() as conn:
            dialect.upsert(conn, job_state, {"job": job, **values}, defaults={"paused": False})

    def set_paused(self, job: str, paused: bool, by: str | None = None) -> None:
        now = to_us(utc(self._clock(), "clock()"))
        self._set_job_state(job, paused=paused, paused_by=by, paused_changed_at_us=now)

    def pause_state(self, job: str) -> PauseState:
        with self._read() as conn:
            query = select(
                job_state.c.paused, job_state.c.paused_by, job_state.c.paused_changed_at_us
            ).where(job_state.c.job == job)
            row = conn.execute(query).first()
        if row is None:
            return PauseState(job=job, paused=False)
        paused, by, at = row
        return PauseState(
            job=job,
            paused=bool(paused),
            changed_by=by,
            changed_at=None if at is None else from_us(at),
        )

    def paused_jobs(self) -> set[str]:
        with self._read() as conn:
            query = select(job_state.c.job).where(job_state.c.paused)
            return set(conn.execute(query).scalars())

    def set_last_fire(self, job: str, when: datetime) -> None:
        self._set_job_state(job, last_fire_us=to_us(utc(when, "when")))

    def last_successes(self) -> dict[str, datetime]:
        with self._read() as conn:
            query = select(job_state.c.job, job_state.c.last_success_us).where(
                job_state.c.last_success_us.is_not(None)
            )
            return {job: from_us(value) for job, value in conn.execute(query)}

    def last_fire(self, job: str) -> datetime | None:
        with self._read() as conn:
            query = select(job_state.c.last_fire_us).where(job_state.c.job == job)
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else from_us(value)

    def close(self) -> None:
        self._closed = True
        self._engine.dispose()
