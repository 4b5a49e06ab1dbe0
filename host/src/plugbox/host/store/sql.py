"""The run store on SQLAlchemy 2 Core: SQLite (WAL) by default, any SQLAlchemy URL in principle.

Queries use only portable Core constructs (window functions included: SQLite has them since
3.25). What is SQLite-specific lives in :func:`_configure_sqlite` and runs only for SQLite URLs.
"""

from __future__ import annotations

import builtins
import time
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
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError, OperationalError

from plugbox.host.store.base import (
    DEFAULT_LIMIT,
    Clock,
    RunExistsError,
    RunLookupError,
    StoreClosedError,
    check_limits,
    system_clock,
)
from plugbox.host.store.migrations import upgrade
from plugbox.host.store.records import (
    ACTIVE_STATUSES,
    JobStats,
    RunRecord,
    RunStatus,
    interrupted,
    job_stats,
    utc,
)

#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long opening a store keeps retrying a locked SQLite file (another process creating it).
OPEN_RETRY_S = 10.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_WRITE = "plugbox_write"  # also used by store.webhooks
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
)
job_state = Table(
    "job_state",
    metadata,
    Column("job", String(255), primary_key=True),
    Column("paused", Boolean, nullable=False),
    Column("last_fire_us", BigInteger),
    Column("last_success_us", BigInteger),
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
        conn.execute(insert(job_state).values(job=record.job, paused=False, last_success_us=when))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite, which would otherwise BEGIN lazily and
        # never before DDL; the "begin" hook below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with "database is
        # locked" when another writer got there first: busy_timeout does not apply to that lock
        # upgrade. Writers therefore take the write lock up front (and wait for it).
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class SqlRunStore:
    """:class:`~plugbox.host.store.base.RunStore` in a SQL database, e.g. ``sqlite:///plugbox.db``.

    One engine (connection pool) per store; every call takes its own connection, so one store may
    be shared by a pool of worker threads. Opening applies any pending schema migrations.
    """

    def __init__(self, url: str, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._engine = create_engine(url)
        if self._engine.dialect.name == "sqlite":
            if self._engine.url.database in (None, "", ":memory:"):
                self._engine.dispose()
                raise ValueError(
                    f"{url!r} is an in-memory SQLite database, which each connection sees empty; "
                    "give a file path, or use MemoryRunStore"
                )
            _configure_sqlite(self._engine)
        self._writer = self._engine.execution_options(**{_WRITE: True})
        self._closed = False
        try:
            self._upgrade()
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

    def _read(self) -> Connection:
        if self._closed:
            raise StoreClosedError()
        return self._engine.connect()

    def _write(self) -> Any:
        if self._closed:
            raise StoreClosedError()
        return self._writer.begin()

    def add(self, record: RunRecord) -> None:
        try:
            with self._write() as conn:
                conn.execute(insert(runs).values(_to_row(record)))
                _note_success(conn, record)
        except IntegrityError as err:
            raise RunExistsError(record.run_id) from err

    def update(self, record: RunRecord) -> None:
        with self._write() as conn:
            done = conn.execute(
                update(runs).where(runs.c.run_id == record.run_id).values(_to_row(record))
            )
            if done.rowcount == 0:
                raise RunLookupError(record.run_id)
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
                .where(runs.c.run_id.startswith(prefix, autoescape=True))
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
    ) -> builtins.list[RunRecord]:
        check_limits(limit)
        query = select(runs).order_by(runs.c.sort_at_us.desc(), runs.c.run_id.desc()).limit(limit)
        if job is not None:
            query = query.where(runs.c.job == job)
        if status is not None:
            query = query.where(runs.c.status == status)
        if before is not None:
            query = query.where(runs.c.sort_at_us < to_us(utc(before, "before")))
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
            changed = [
                interrupted(_from_row(row), reason, now) for row in conn.execute(query).mappings()
            ]
            for record in changed:
                conn.execute(
                    update(runs).where(runs.c.run_id == record.run_id).values(_to_row(record))
                )
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
        with self._read() as conn:  # one transaction: one consistent snapshot
            for name, status, count in conn.execute(counts_query):
                counts.setdefault(name, {})[status] = count
            for name, duration in conn.execute(durations_query):
                durations.setdefault(name, []).append(duration)
            last = {row["job"]: _from_row(row) for row in conn.execute(last_query).mappings()}
        return {
            name: job_stats(name, counts[name], last.get(name), durations.get(name, []))
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
                done = conn.execute(delete(runs).where(finished, runs.c.run_id.in_(beyond)))
                removed += done.rowcount
        return removed

    def _set_job_state(self, job: str, **values: Any) -> None:
        with self._write() as conn:
            done = conn.execute(update(job_state).where(job_state.c.job == job).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(job_state).values({"paused": False, **values, "job": job}))

    def set_paused(self, job: str, paused: bool) -> None:
        self._set_job_state(job, paused=paused)

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
