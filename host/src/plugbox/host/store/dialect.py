"""Everything that differs between the run store's two databases, SQLite and PostgreSQL.

The store and its migrations are written in portable SQLAlchemy Core; where the two databases
disagree, they call one function here instead of testing the dialect themselves (ADR 0016):

- URLs: ``postgresql://`` means psycopg 3 (SQLAlchemy alone would pick psycopg2), and a URL is
  only ever shown with its password masked (:func:`redact`);
- connections: SQLite gets WAL, a busy timeout and writers that take the lock up front;
  PostgreSQL gets a connect timeout, and snapshot reads where several statements must agree;
- upserts (:func:`upsert`), id-prefix matching (:func:`prefix_match`), columns added by a
  migration (:func:`add_column`) and the migration lock (:func:`lock_for_migration`).

Instants are BIGINT microseconds and JSON is the ``JSON`` type on both (``json``, not ``jsonb``,
on PostgreSQL: it keeps a record's text exactly, ``\\u0000`` included, which ``jsonb`` refuses).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.schema import CreateColumn

#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long connecting to a PostgreSQL server may take before the store reports it unreachable.
PG_CONNECT_TIMEOUT_S = 10
#: Execution option that marks a connection as a writer (SQLite: ``BEGIN IMMEDIATE``).
WRITE = "plugbox_write"
#: Key of the PostgreSQL advisory lock held while migrating: any fixed 64-bit number that other
#: software sharing the database is unlikely to pick (the bytes of "plugbox\\0").
MIGRATION_LOCK_KEY = int.from_bytes(b"plugbox\0", "big", signed=True)

#: The one PostgreSQL driver the store is tested with.
PG_DRIVER = "postgresql+psycopg"
_PG_SPELLINGS = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_URL_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^@/?#]*@")
_URL_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")


class UnsupportedDatabaseError(ValueError):
    """A URL that names neither a SQLite file nor a PostgreSQL database."""


def parse_url(url: str | URL) -> URL:
    """``url`` as the SQLAlchemy URL the store connects with (``postgresql://`` → psycopg 3)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UnsupportedDatabaseError(
            f"{redact(str(url))!r} is not a database URL; write sqlite:///PATH or"
            " postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if parsed.drivername in _PG_SPELLINGS:
        return parsed.set(drivername=PG_DRIVER)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise UnsupportedDatabaseError(
        f"unsupported database {parsed.drivername!r}; use sqlite:///PATH or postgresql://..."
        " (psycopg 3 is the PostgreSQL driver)"
    )


def redact(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, for errors, logs and listings; libpq also
    takes one as a query parameter (``?password=…``), masked the same way."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
        shown = parsed.render_as_string(hide_password=True)
    except ArgumentError:
        shown = _URL_PASSWORD.sub(r"\1***@", str(url))
    return _URL_QUERY_PASSWORD.sub(r"\1***", shown)


def is_postgresql(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "postgresql"


def create(url: URL) -> Engine:
    """An engine for ``url`` (from :func:`parse_url`), configured for its database."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        _configure_sqlite(engine)
        return engine
    try:
        # No pool_pre_ping: it costs a round trip on every call, doubling a get()'s latency. A
        # server restarted under a pooled connection fails that one call, and SQLAlchemy then
        # drops the whole pool, so the next call reconnects.
        return create_engine(
            url,
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}
            if "connect_timeout" not in url.query
            else {},
        )
    except ModuleNotFoundError as err:
        raise UnsupportedDatabaseError(
            f"a PostgreSQL run store needs psycopg 3, which is not installed ({err.name});"
            " install it with: pip install 'plugbox-host[postgresql]'"
        ) from None


def snapshot_reader(engine: Engine) -> Engine:
    """The engine for reads of several statements that must agree (``stats()``): on PostgreSQL a
    REPEATABLE READ transaction (READ COMMITTED gives each statement its own snapshot); SQLite's
    read transaction is one snapshot already."""
    if is_postgresql(engine):
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def writer(engine: Engine) -> Engine:
    return engine.execution_options(**{WRITE: True})


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
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def upsert(
    conn: Connection, table: Table, values: dict[str, Any], defaults: dict[str, Any]
) -> None:
    """Insert a row of ``table`` or, when its primary key is taken, set ``values`` on it.

    One statement, so two processes setting the same new key cannot both insert (an UPDATE-then-
    INSERT would let them). ``defaults`` fill the other columns of a new row.
    """
    key = [column.name for column in table.primary_key.columns]
    changed = {name: value for name, value in values.items() if name not in key}
    row = {**defaults, **values}
    statement: postgresql.Insert | sqlite.Insert = (
        postgresql.insert(table) if is_postgresql(conn) else sqlite.insert(table)
    ).values(row)
    conn.execute(statement.on_conflict_do_update(index_elements=key, set_=changed))


def increment(conn: Connection, table: Table, key: dict[str, Any], column: str, by: int) -> None:
    """Add ``by`` to ``column`` of the row of ``table`` with primary key ``key``, creating the
    row (at ``by``) if it is missing.

    One statement, so concurrent writers in several processes neither lose an addition nor both
    insert the first row.
    """
    statement: postgresql.Insert | sqlite.Insert = (
        postgresql.insert(table) if is_postgresql(conn) else sqlite.insert(table)
    ).values({**key, column: by})
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=list(key), set_={column: table.c[column] + by}
        )
    )


def prefix_match(bind: Connection, column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, case-sensitively, on both databases.

    SQLite's LIKE ignores ASCII case (``AB`` would name run ``ab…``) and so cannot use the index
    on a case-sensitive column; its GLOB is case-sensitive and uses the index. PostgreSQL's LIKE
    is case-sensitive already. Wildcards in ``prefix`` are escaped either way.
    """
    if bind.dialect.name == "sqlite":
        escaped = "".join(f"[{char}]" if char in "*?[" else char for char in prefix)
        return column.op("GLOB", is_comparison=True)(escaped + "*")
    return column.startswith(prefix, autoescape=True)


def add_column(conn: Connection, table: str, column: Column[Any]) -> None:
    """``ALTER TABLE … ADD COLUMN`` with the column's type spelt for this database.

    For migrations: a hand-written type name (``JSON``, ``DATETIME``) may mean something else,
    or nothing, on the other database.
    """
    Table(table, MetaData(), column)  # CreateColumn compiles a column of some table
    spec = CreateColumn(column).compile(dialect=conn.dialect)
    name = conn.dialect.identifier_preparer.quote_identifier(table)
    conn.execute(text(f"ALTER TABLE {name} ADD COLUMN {spec}"))


def lock_for_migration(conn: Connection) -> None:
    """Serialise schema upgrades of one database until ``conn``'s transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so replicas starting together queue here and
    each then sees the schema the first one committed (two concurrent CREATE TABLEs would fail on
    a unique index of the catalog instead). SQLite: the upgrade's ``BEGIN IMMEDIATE`` already
    holds the database's one write lock.
    """
    if is_postgresql(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
