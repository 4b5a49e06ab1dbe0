"""Versioned schema migrations for the SQL run store.

``MIGRATIONS`` is an ordered list; the database remembers in ``schema_version`` which ones it has.
:func:`upgrade` applies the missing ones in one transaction, so a crash mid-upgrade leaves the old
schema, not half of the new one. A database written by a newer plugbox is refused rather than
"upgraded" backwards.

Each migration builds its tables from its own ``MetaData`` and never imports the query-time tables
in :mod:`plugbox.host.store.sql`: those describe the *latest* schema, and a migration that used
them would create columns a later migration then tries to add again. A test checks that the
migrated schema and the query-time tables agree.

Every migration must be right on SQLite and PostgreSQL alike: build tables with SQLAlchemy types
and add columns with :func:`~plugbox.host.store.dialect.add_column`, never with a type name
written into SQL text. Several hosts may start at once against one PostgreSQL database;
:func:`upgrade` takes :func:`~plugbox.host.store.dialect.lock_for_migration` first, so they apply
the missing migrations one after another and the later ones find nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    column,
    func,
    insert,
    literal,
    select,
    table,
    text,
    update,
)

from plugbox.host.store.dialect import add_column, lock_for_migration, redact


class SchemaTooNewError(RuntimeError):
    """The database's schema is newer than this code understands."""

    def __init__(self, found: int, supported: int, url: str) -> None:
        super().__init__(
            f"the run store at {url} has schema version {found}, but this plugbox only knows "
            f"versions up to {supported}; upgrade plugbox-host (or point it at another database)"
        )
        self.found = found
        self.supported = supported


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


_version_metadata = MetaData()
schema_version = Table(
    "schema_version",
    _version_metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(255), nullable=False),
    Column("applied_at_us", BigInteger, nullable=False),
)


def _v1_runs_and_job_state(conn: Connection) -> None:
    metadata = MetaData()
    Table(
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
        # Instants are integer microseconds since the epoch, UTC: they compare and sort the same
        # on every database, and there is no time zone left for a driver to drop.
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
        Index("ix_runs_job_sort_at", "job", "sort_at_us"),
        Index("ix_runs_sort_at", "sort_at_us"),
        Index("ix_runs_status_sort_at", "status", "sort_at_us"),
        Index("ix_runs_first_run_id", "first_run_id"),
    )
    Table(
        "job_state",
        metadata,
        Column("job", String(255), primary_key=True),
        Column("paused", Boolean, nullable=False),
        Column("last_fire_us", BigInteger),
    )
    metadata.create_all(conn)


def _v2_denials(conn: Connection) -> None:
    # Null in rows written before it: those runs recorded no denials (read back as none).
    add_column(conn, "runs", Column("denials", JSON))


def _v3_who(conn: Connection) -> None:
    # Null in older rows: nobody was recorded (the scheduler, or the CLI).
    add_column(conn, "runs", Column("requested_by", String(255)))
    add_column(conn, "runs", Column("cancelled_by", String(255)))
    add_column(conn, "job_state", Column("paused_by", String(255)))
    add_column(conn, "job_state", Column("paused_changed_at_us", BigInteger))


def _v4_webhooks_and_last_success(conn: Connection) -> None:
    metadata = MetaData()
    # One row per (run, event, receiver): the delivery queue itself, so a delivery outlives the
    # process that made it (docs/adr/0015-webhook-delivery.md).
    Table(
        "webhook_deliveries",
        metadata,
        Column("delivery_id", String(64), primary_key=True),
        Column("run_id", String(64), nullable=False),
        Column("job", String(255), nullable=False),
        Column("event", String(32), nullable=False),
        Column("url", Text, nullable=False),
        Column("state", String(16), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at_us", BigInteger, nullable=False),
        Column("next_attempt_us", BigInteger),
        Column("give_up_at_us", BigInteger, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("leased_until_us", BigInteger),
        Column("reason", Text),
        Index("ix_webhook_deliveries_run", "run_id"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_us"),
        Index("ix_webhook_deliveries_created", "created_at_us"),
    )
    Table(
        "webhook_attempts",
        metadata,
        Column("delivery_id", String(64), primary_key=True),
        Column("attempt", Integer, primary_key=True, autoincrement=False),
        Column("at_us", BigInteger, nullable=False),
        Column("duration_ms", BigInteger, nullable=False),
        Column("status_code", Integer),
        Column("error", Text),
        Column("next_retry_us", BigInteger),
    )
    metadata.create_all(conn)
    # Read by the metrics scrape instead of aggregating every stored run (ADR 0014); filled in
    # for history written before it, with Core statements so booleans and types are spelt right
    # on SQLite and PostgreSQL alike.
    add_column(conn, "job_state", Column("last_success_us", BigInteger))
    runs = table("runs", column("job"), column("status"), column("finished_at_us"))
    state = table("job_state", column("job"), column("paused"), column("last_success_us"))
    succeeded = runs.c.status == "success"
    conn.execute(
        insert(state).from_select(
            ["job", "paused"],
            select(runs.c.job, literal(False, Boolean))
            .where(succeeded, runs.c.job.not_in(select(state.c.job)))
            .distinct(),
        )
    )
    latest = (
        select(func.max(runs.c.finished_at_us))
        .where(runs.c.job == state.c.job, succeeded)
        .scalar_subquery()
    )
    conn.execute(update(state).values(last_success_us=latest))


def _v5_fire_queue(conn: Connection) -> None:
    # A fire that cannot start now is a `queued` row any replica may claim (ADR 0020). Null in
    # older rows and in runs that are not fires of a schedule (a manual trigger's first attempt).
    add_column(conn, "runs", Column("fire_key", String(320)))
    add_column(conn, "runs", Column("priority", Integer))
    add_column(conn, "runs", Column("due_at_us", BigInteger))
    add_column(conn, "runs", Column("lease_owner", String(255)))
    add_column(conn, "runs", Column("lease_until_us", BigInteger))
    add_column(conn, "runs", Column("lease_epoch", Integer))
    # Unique: a second replica's insert of the same (job, instant, attempt) is a no-op. NULLs
    # never collide, on either database.
    conn.execute(text("CREATE UNIQUE INDEX ux_runs_fire_key ON runs (fire_key)"))
    conn.execute(text("CREATE INDEX ix_runs_status_due ON runs (status, due_at_us)"))
    conn.execute(text("CREATE INDEX ix_runs_lease_until ON runs (lease_until_us)"))
    # Counters every replica polls (and PostgreSQL also NOTIFYs): a reload asked of any replica.
    metadata = MetaData()
    Table(
        "serve_signals",
        metadata,
        Column("name", String(64), primary_key=True),
        Column("generation", BigInteger, nullable=False),
    )
    metadata.create_all(conn)


def _v6_job_tallies(conn: Connection) -> None:
    # Runs per job and status, kept by every write (docs/adr/0030-job-tallies.md): a job list
    # reads these few rows instead of counting the whole history on every request.
    metadata = MetaData()
    tallies = Table(
        "job_tallies",
        metadata,
        Column("job", String(255), primary_key=True),
        Column("status", String(16), primary_key=True),
        Column("runs", BigInteger, nullable=False),
    )
    metadata.create_all(conn)
    runs = table("runs", column("job"), column("status"))
    conn.execute(
        insert(tallies).from_select(
            ["job", "status", "runs"],
            select(runs.c.job, runs.c.status, func.count()).group_by(runs.c.job, runs.c.status),
        )
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs and job state", _v1_runs_and_job_state),
    Migration(2, "the runtime calls each run was refused", _v2_denials),
    Migration(3, "who asked for, cancelled, paused or resumed a job", _v3_who),
    Migration(4, "webhook deliveries and each job's last success", _v4_webhooks_and_last_success),
    Migration(5, "fires queued as claimable rows, with leases", _v5_fire_queue),
    Migration(6, "runs per job and status, kept by every write", _v6_job_tallies),
)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The newest migration applied to this database (0 for an empty one)."""
    schema_version.create(conn, checkfirst=True)
    found = conn.execute(select(func.max(schema_version.c.version))).scalar_one()
    return int(found or 0)


def upgrade(engine: Engine, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply every migration the database lacks, in one transaction; return the new version.

    Safe to call from several processes at once: they take turns (see the module docstring).
    """
    latest = migrations[-1].version
    with engine.begin() as conn:
        lock_for_migration(conn)
        found = current_version(conn)
        if found > latest:
            raise SchemaTooNewError(found, latest, redact(engine.url))
        for migration in migrations:
            if migration.version <= found:
                continue
            migration.apply(conn)
            conn.execute(
                insert(schema_version).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at_us=int(datetime.now(UTC).timestamp() * 1_000_000),
                )
            )
        return max(found, latest)
