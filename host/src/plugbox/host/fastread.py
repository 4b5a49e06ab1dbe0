"""Read-only CLI answers straight from a SQLite run store: no SQLAlchemy, no pydantic (ADR 0032).

``plugbox runs list`` is the command an operator types most, and importing SQLAlchemy, the
record models and the configuration models cost it ~40 times a bare Python start. For the one
common case — a SQLite store that exists, at the current schema version, named by a
configuration whose paths pass the host's trust checks — this module finds the database file with
the same steps ``load_config`` takes (:mod:`plugbox.host.config.sources`) and reads the few
columns the table shows with the stdlib ``sqlite3`` module.

Anything else returns ``None`` and the command takes the full path, which reports what is wrong:
PostgreSQL, a URL with options, a store not created yet or at another schema version, a state
directory not private to this user, a config a job could have written. What the fast path does
not do is validate the whole file: a misspelt key elsewhere in ``plugbox.toml`` is reported by
every command that loads the configuration, but not by ``runs list`` (ADR 0032 weighs this).

The SQL below names columns of :data:`plugbox.host.store.sql.runs`, which stays the one schema;
``tests/host/test_cli_fastread.py`` checks that these reads return what ``SqlRunStore`` returns
for the same database, and that :data:`SCHEMA_VERSION` is the store's latest.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from plugbox.host.config.sources import absolute, anchor, find_config, with_env
from plugbox.host.config.state import (
    STATE_DIR_MODE,
    is_inside,
    source_problems,
    untrusted_code_paths,
)
from plugbox.host.config.workspace_mark import mark_workspace

#: The schema these reads were written for (``plugbox.host.store.migrations.LATEST_VERSION``;
#: a test keeps them equal). A store at any other version is left to the full path.
SCHEMA_VERSION = 6
#: As long as the store waits for a writer's lock (``store.dialect.SQLITE_BUSY_TIMEOUT_MS``).
BUSY_TIMEOUT_S = 30.0
_SQLITE_PREFIX = "sqlite:///"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RunLine:
    """The fields of a run record that ``plugbox runs list`` shows, as the record has them."""

    run_id: str
    job: str
    status: str
    trigger: str
    attempt: int
    started_at: datetime | None
    duration_ms: int | None


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for any other URL (PostgreSQL, memory,
    options or escapes in the URL), which the full path handles."""
    if not url.startswith(_SQLITE_PREFIX):
        return None
    database = url.removeprefix(_SQLITE_PREFIX)
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if any(char in database for char in "?%#@"):
        return None  # SQLAlchemy would decode or split these: not a plain path
    return Path(database)


def _plain_sqlite(url: str, where: Path, home: Path) -> str:
    """:data:`plugbox.host.config.sources.AnchorUrl` for plain SQLite URLs only."""
    database = sqlite_file(url)
    if database is None:
        raise ValueError("not a plain SQLite URL")
    return f"{_SQLITE_PREFIX}{absolute(str(database), where, home)}"


def locate_store(
    config: str | None, db: str | None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The SQLite run store the CLI's ``--config`` and ``--db`` name, if the fast path may read
    it: it exists, and so does its private state directory (else the full path makes them)."""
    place = store_place(config, db, env)
    if place is None:
        return None
    database, state_dir, workspace = place
    if checked_store(f"{_SQLITE_PREFIX}{database}", state_dir) is None:
        return None
    mark_workspace(workspace)  # as load_config does: the mark guards against planted configs
    return database


def store_place(
    config: str | None, db: str | None, env: Mapping[str, str] | None = None
) -> tuple[Path, Path, Path] | None:
    """Where ``load_config`` would put the run store: ``(database file, state_dir, workspace)``
    for a plain SQLite store, else None (also when ``load_config`` would refuse the places).

    Takes ``load_config``'s steps for the keys that place the store, and its refusals for them
    (a config file a job could have written, a store or an import path inside the workspace).
    """
    env = os.environ if env is None else env
    source = find_config(config, env)
    raw = {}
    if source is not None:
        try:
            with source.open("rb") as handle:
                raw = tomllib.load(handle)
        except (OSError, ValueError):
            return None
    data, origins = with_env(raw, env)
    if db is not None:
        data["database_url"], origins[("database_url",)] = db, "--db"
    cwd = Path.cwd()
    base = source.parent if source is not None else cwd
    if anchor(data, origins, base, cwd, env, _plain_sqlite):
        return None
    state_dir, workspace, paths = data["state_dir"], data["workspace"], data.get("plugin_paths", [])
    database = sqlite_file(data["database_url"])
    if not (
        isinstance(state_dir, Path)
        and isinstance(workspace, Path)
        and isinstance(paths, list)
        and all(isinstance(path, Path) for path in paths)
        and database is not None
    ):
        return None
    if any(is_inside(path, workspace) for path in (state_dir, database, *paths)):
        return None
    if source is not None and source_problems(source, workspace):
        return None
    if untrusted_code_paths(workspace, sys.path):
        return None
    return database, state_dir, workspace


def checked_store(database_url: str, state_dir: Path) -> Path | None:
    """The SQLite file of a loaded configuration's store, if the fast path may read it (the
    store exists and its state directory is as ``ensure_state_dir`` leaves it)."""
    database = sqlite_file(database_url)
    if database is None or not _private_dir(state_dir) or not database.is_file():
        return None
    return database


def _private_dir(path: Path) -> bool:
    """Whether ``path`` is a directory of this user's that only it may enter, as
    ``ensure_state_dir`` leaves it; otherwise the full path creates, tightens or refuses it."""
    try:
        info = path.stat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) == STATE_DIR_MODE
    )


def _connect(database: Path) -> sqlite3.Connection | None:
    """A read-only connection to a store at :data:`SCHEMA_VERSION`, else None."""
    try:
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    if row is None or row[0] != SCHEMA_VERSION:
        conn.close()
        return None
    return conn


def recent_runs(
    database: Path, *, job: str | None, status: str | None, limit: int
) -> list[RunLine] | None:
    """What ``SqlRunStore.list(job=, status=, limit=)`` returns, as :class:`RunLine`; None when
    the store cannot be read here."""
    conn = _connect(database)
    if conn is None:
        return None
    where, params = [], []
    for column, value in (("job", job), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    query = (
        "SELECT run_id, job, status, trigger, attempt, started_at_us, duration_ms FROM runs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY sort_at_us DESC, run_id DESC LIMIT ?"
    )
    try:
        with conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return [
        RunLine(
            run_id=run_id,
            job=job_key,
            status=state,
            trigger=trigger,
            attempt=attempt,
            started_at=None if started is None else _EPOCH + timedelta(microseconds=started),
            duration_ms=duration,
        )
        for run_id, job_key, state, trigger, attempt, started, duration in rows
    ]


def paused_jobs(database: Path) -> set[str] | None:
    """What ``SqlRunStore.paused_jobs()`` returns; None when the store cannot be read here."""
    conn = _connect(database)
    if conn is None:
        return None
    try:
        with conn:
            rows = conn.execute("SELECT job FROM job_state WHERE paused").fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {job for (job,) in rows}
