"""One fixture, every backend: each store test runs against MemoryRunStore, a SQLite file and a
PostgreSQL database (a schema of its own on the session's throwaway server)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugbox.host.store import MemoryRunStore, RunStore, SqlRunStore

SQL_BACKENDS = ("sqlite", "postgresql")


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 30, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def pg_store_database(postgres: object) -> str:
    """One database for the store tests; each test gets a schema in it (cheaper than a database)."""
    postgres.create_database("store_tests")  # type: ignore[attr-defined]
    return "store_tests"


def _sql_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        path = tmp_path / "state" / "plugbox.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    cluster = request.getfixturevalue("postgres")
    database = request.getfixturevalue("pg_store_database")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    cluster.psql(f"CREATE SCHEMA {schema}", database=database)
    return str(cluster.url(database, schema=schema))


@pytest.fixture(params=SQL_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _sql_url(request.param, request, tmp_path)


@pytest.fixture
def open_sql(db_url: str, clock: FakeClock) -> Iterator[Callable[[], SqlRunStore]]:
    """Open the same database again and again, as a restarted host would."""
    opened: list[SqlRunStore] = []

    def open_() -> SqlRunStore:
        opened.append(SqlRunStore(db_url, clock=clock))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def store(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "memory":
        memory = MemoryRunStore(clock=clock)
        yield memory
        memory.close()
    else:
        sql = SqlRunStore(_sql_url(request.param, request, tmp_path), clock=clock)
        yield sql
        sql.close()
