"""One fixture, every backend: each store test runs against MemoryRunStore and a SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugbox.host.store import MemoryRunStore, RunStore, SqlRunStore


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


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'plugbox.db'}"


@pytest.fixture
def open_sql(db_url: str, clock: FakeClock) -> Iterator[Callable[[], SqlRunStore]]:
    """Open the same SQLite file again and again, as a restarted host would."""
    (Path(db_url.removeprefix("sqlite:///")).parent).mkdir(parents=True, exist_ok=True)
    opened: list[SqlRunStore] = []

    def open_() -> SqlRunStore:
        opened.append(SqlRunStore(db_url, clock=clock))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(params=["memory", "sqlite"])
def store(
    request: pytest.FixtureRequest, clock: FakeClock, open_sql: Callable[[], SqlRunStore]
) -> Iterator[RunStore]:
    if request.param == "memory":
        memory = MemoryRunStore(clock=clock)
        yield memory
        memory.close()
    else:
        yield open_sql()
