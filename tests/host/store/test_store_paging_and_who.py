"""What the HTTP API asks of the store: keyset pages, more filters, and who changed what."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from tests.host.store.conftest import FakeClock
from tests.host.store.test_store import T0, at, make

from plugbox.host.store import RunCursor, RunStore, SqlRunStore, migrations


def test_cursor_pages_cover_ties_exactly_once(store: RunStore) -> None:
    # Five runs share one start instant: a cursor of the instant alone would lose four of them.
    for n in range(5):
        store.add(make(f"tie{n}"))
    for n in range(5):
        store.add(make(f"later{n}", started_at=at(n + 1), finished_at=at(n + 2)))
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list(limit=3, cursor=cursor)
        if not page:
            break
        seen += [r.run_id for r in page]
        cursor = RunCursor.after(page[-1])
    assert seen == [r.run_id for r in store.list(limit=100)]
    assert len(seen) == len(set(seen)) == 10
    assert seen[:5] == [f"later{n}" for n in (4, 3, 2, 1, 0)]


def test_trigger_and_since_filters(store: RunStore) -> None:
    store.add(make("s", trigger="schedule"))
    store.add(make("m", trigger="manual", started_at=at(5), finished_at=at(6)))
    assert [r.run_id for r in store.list(trigger="manual")] == ["m"]
    assert [r.run_id for r in store.list(since=at(1))] == ["m"]
    assert [r.run_id for r in store.list(since=T0, before=at(1))] == ["s"]


def test_who_is_kept(store: RunStore, clock: FakeClock) -> None:
    store.add(make("r1", trigger="manual", requested_by="ci-bot", cancelled_by="ops"))
    got = store.get("r1")
    assert (got.requested_by, got.cancelled_by) == ("ci-bot", "ops")
    assert store.pause_state("example:hello").paused is False
    store.set_paused("example:hello", True, by="ops")
    state = store.pause_state("example:hello")
    assert (state.paused, state.changed_by, state.changed_at) == (True, "ops", clock.now)
    clock.advance(minutes=1)
    store.set_paused("example:hello", False)
    state = store.pause_state("example:hello")
    assert (state.paused, state.changed_by) == (False, None)
    assert state.changed_at == clock.now
    assert store.paused_jobs() == set()


def test_a_version_2_database_keeps_its_runs_and_gains_the_columns(
    db_url: str, open_sql: Callable[[], SqlRunStore]
) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(db_url)
    migrations.upgrade(engine, migrations.MIGRATIONS[:2])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, job, plugin_id, job_id, status, trigger, attempt,"
                " first_run_id, scheduled_at_us, sort_at_us, events, events_truncated, log,"
                " log_truncated, output, output_truncated) VALUES ('old', 'p:j', 'p', 'j',"
                " 'success', 'manual', 1, 'old', 0, 0, '[]', false, '[]', false, '', false)"
            )
        )
        conn.execute(text("INSERT INTO job_state (job, paused) VALUES ('p:j', true)"))
    engine.dispose()
    store = open_sql()
    old = store.get("old")
    assert (old.trigger, old.requested_by, old.cancelled_by) == ("manual", None, None)
    state = store.pause_state("p:j")
    assert (state.paused, state.changed_by, state.changed_at) == (True, None, None)
    store.add(make("new", requested_by="ci-bot"))
    assert store.get("new").requested_by == "ci-bot"
