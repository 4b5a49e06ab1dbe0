"""The run store contract. Every test taking ``store`` runs against both backends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect, select

import plugbox.host.store as store_pkg
from plugbox.host.store import (
    LATEST_VERSION,
    MemoryRunStore,
    RunExistsError,
    RunLookupError,
    RunRecord,
    RunStore,
    SchemaTooNewError,
    SqlRunStore,
    StoreClosedError,
    dialect,
    migrations,
)
from plugbox.host.store import sql as sql_store
from plugbox.host.store.records import MAX_LOG_ENTRIES, MAX_OUTPUT_CHARS
from plugbox.host.store.sql import metadata as sql_metadata

T0 = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


def make(run_id: str, **fields: Any) -> RunRecord:
    """A finished successful run of example:hello started at T0, with ``fields`` overriding."""
    data: dict[str, Any] = {
        "run_id": run_id,
        "job": "example:hello",
        "status": "success",
        "scheduled_at": T0,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=1),
        "duration_ms": 1000,
        "host_id": "host-a",
    }
    data.update(fields)
    return RunRecord.model_validate(data)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- the record model --------------------------------------------------------------------------


def test_record_derives_ids_and_first_run() -> None:
    record = make("r1")
    assert (record.plugin_id, record.job_id, record.first_run_id) == ("example", "hello", "r1")
    by_parts = RunRecord(run_id="r2", plugin_id="p", job_id="j", status="queued", scheduled_at=T0)
    assert by_parts.job == "p:j"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plugin_id": "other", "job_id": "hello"}, "does not match plugin_id"),
        ({"attempt": 1, "first_run_id": "r0"}, "first_run_id must be itself"),
        ({"attempt": 2}, "first_run_id must name the first attempt"),
        ({"status": "running"}, "is running but has a finished_at"),
        ({"finished_at": T0 - timedelta(seconds=1)}, "finished before it started"),
        ({"started_at": datetime(2025, 3, 30, 12, 0)}, "has no time zone"),
    ],
)
def test_record_refuses_inconsistent_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make("r1", **fields)


def test_record_needs_a_plugin_qualified_job() -> None:
    with pytest.raises(ValueError, match="'hello' is not 'PLUGIN:JOB'"):
        RunRecord(run_id="r1", job="hello", status="queued", scheduled_at=T0)


def test_record_bounds_log_and_output() -> None:
    log = [{"level": "info", "message": f"line {i}", "at": 0.0} for i in range(MAX_LOG_ENTRIES + 5)]
    record = make("r1", log=log, output="x" * (MAX_OUTPUT_CHARS + 1))
    assert len(record.log) == MAX_LOG_ENTRIES and record.log_truncated
    assert len(record.output) == MAX_OUTPUT_CHARS and record.output_truncated


def test_public_api_is_pinned() -> None:
    assert sorted(store_pkg.__all__) == [
        "DeliveryLog",
        "JobStats",
        "JobTally",
        "LATEST_VERSION",
        "MemoryRunStore",
        "PauseState",
        "RunCursor",
        "RunExistsError",
        "RunLookupError",
        "RunRecord",
        "RunStatus",
        "RunStore",
        "SchemaTooNewError",
        "SqlRunStore",
        "StoreClosedError",
        "StoreUnavailableError",
        "Trigger",
        "UnsupportedDatabaseError",
        "WebhookAttempt",
        "WebhookDelivery",
        "redact",
    ]


# --- round trip and bad input ------------------------------------------------------------------


def test_both_backends_satisfy_the_protocol(store: RunStore) -> None:
    assert isinstance(store, RunStore)


def test_every_field_round_trips(store: RunStore) -> None:
    big = {"rows": [{"i": i, "name": f"nöde-{i}", "ok": i % 2 == 0} for i in range(20_000)]}
    record = make(
        "r-ünï-🙂",
        job="exämple:hëllo",
        trigger="retry",
        attempt=3,
        first_run_id="r-first",
        status="killed",
        result=big,
        error={"type": "MemoryError", "message": "zu groß ✗", "traceback": "Traceback…\n  ☃"},
        kill_reason="memory",
        peak_memory_mb=63.5,
        cpu_ms=420,
        events=[{"name": "hello.said", "data": {"run": 1, "ß": None}, "at": 1.5}],
        log=[{"level": "info", "message": "said hello 👋", "fields": {"run": 1}, "at": 1.25}],
        output="stdout line ✓\n",
        enforcement={"mode": "sandbox", "fs": "kernel", "landlock_abi": 7, "notes": ["a"]},
        reason="budget",
        host_id="hôst-1",
        denials=[
            {"operation": "fs.read", "target": ".env", "allowed": False, "rule": "default deny"}
        ],
    )
    store.add(record)
    assert store.get(record.run_id) == record


def test_none_fields_round_trip(store: RunStore) -> None:
    record = RunRecord(
        run_id="q1", job="example:hello", status="queued", scheduled_at=T0, host_id=None
    )
    store.add(record)
    got = store.get("q1")
    assert got == record
    assert (got.started_at, got.finished_at, got.duration_ms, got.result, got.error) == (None,) * 5


def test_returned_records_are_copies(store: RunStore) -> None:
    store.add(make("r1", result={"n": 1}))
    got = store.get("r1")
    assert isinstance(got.result, dict)
    got.result["n"] = 2
    assert store.get("r1").result == {"n": 1}


def test_add_refuses_a_taken_run_id(store: RunStore) -> None:
    store.add(make("r1"))
    with pytest.raises(RunExistsError, match="'r1' is already stored"):
        store.add(make("r1", status="failed"))
    assert store.get("r1").status == "success"


def test_unknown_run_id_is_a_lookup_error_naming_it(store: RunStore) -> None:
    with pytest.raises(LookupError, match="no run with id 'nope'"):
        store.get("nope")
    with pytest.raises(LookupError, match="no run with id 'nope'"):
        store.update(make("nope"))


def test_update_replaces_the_whole_record(store: RunStore) -> None:
    store.add(make("r1", status="running", finished_at=None, duration_ms=None, result=None))
    done = make("r1", status="failed", error={"type": "ValueError", "message": "bad"})
    store.update(done)
    assert store.get("r1") == done


def test_closed_store_refuses_calls(store: RunStore) -> None:
    store.close()
    with pytest.raises(StoreClosedError):
        store.get("r1")
    with pytest.raises(StoreClosedError):
        store.add(make("r1"))


# --- time --------------------------------------------------------------------------------------


def test_the_same_instant_written_two_ways_is_one_value(store: RunStore) -> None:
    local = datetime(2025, 3, 30, 14, 0, tzinfo=PLUS2)  # == T0
    store.add(
        make(
            "local",
            started_at=local,
            scheduled_at=local,
            finished_at=None,
            status="running",
            duration_ms=None,
        )
    )
    store.add(
        make(
            "utc",
            started_at=T0,
            scheduled_at=T0,
            finished_at=None,
            status="running",
            duration_ms=None,
        )
    )
    a, b = store.get("local"), store.get("utc")
    assert a.started_at == b.started_at == T0
    assert a.started_at is not None and a.started_at.utcoffset() == timedelta(0)
    # Equal instants tie on time and fall back to run_id, newest first.
    assert [r.run_id for r in store.list()] == ["utc", "local"]
    # A strict `before` at that instant excludes both, however it is spelt.
    assert store.list(before=local) == []


def test_offsets_sort_by_instant_not_by_wall_clock(store: RunStore) -> None:
    # 13:30+02:00 is 11:30Z: earlier than 12:00Z although its wall clock reads later.
    store.add(
        make(
            "early",
            started_at=datetime(2025, 3, 30, 13, 30, tzinfo=PLUS2),
            scheduled_at=datetime(2025, 3, 30, 13, 30, tzinfo=PLUS2),
        )
    )
    store.add(make("late", started_at=T0))
    assert [r.run_id for r in store.list()] == ["late", "early"]
    assert [r.run_id for r in store.list(before=datetime(2025, 3, 30, 13, 45, tzinfo=PLUS2))] == [
        "early"
    ]


def test_naive_datetimes_are_refused(store: RunStore) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        store.list(before=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="no time zone"):
        store.set_last_fire("example:hello", datetime(2025, 1, 1))


def test_microseconds_survive(store: RunStore) -> None:
    when = datetime(2025, 3, 30, 12, 0, 0, 123456, tzinfo=UTC)
    store.add(make("r1", scheduled_at=when, started_at=when, finished_at=when))
    assert store.get("r1").started_at == when


# --- listing -----------------------------------------------------------------------------------


@pytest.fixture
def history(store: RunStore) -> RunStore:
    """Ten runs of a, five of b, one minute apart; every third of a failed; one b queued."""
    for i in range(10):
        status = "failed" if i % 3 == 0 else "success"
        store.add(
            make(
                f"a{i:02}",
                job="p:a",
                status=status,
                started_at=at(i),
                scheduled_at=at(i),
                finished_at=at(i),
                duration_ms=100 * (i + 1),
            )
        )
    for i in range(4):
        store.add(
            make(
                f"b{i:02}",
                job="p:b",
                started_at=at(i + 0.5),
                scheduled_at=at(i + 0.5),
                finished_at=at(i + 0.5),
                duration_ms=10,
            )
        )
    store.add(
        RunRecord(run_id="b04", job="p:b", status="queued", scheduled_at=at(20), host_id="host-a")
    )
    return store


def test_list_is_newest_first_with_a_limit(history: RunStore) -> None:
    assert [r.run_id for r in history.list(limit=4)] == ["b04", "a09", "a08", "a07"]
    assert len(history.list()) == 15
    assert history.list(limit=0) == []


def test_list_filters_by_job_and_status(history: RunStore) -> None:
    assert [r.run_id for r in history.list(job="p:a", status="failed")] == [
        "a09",
        "a06",
        "a03",
        "a00",
    ]
    assert {r.job for r in history.list(job="p:b")} == {"p:b"}
    assert history.list(job="p:missing") == []


def test_list_pages_back_with_before(history: RunStore) -> None:
    seen: list[str] = []
    page = history.list(job="p:a", limit=3)
    while page:
        seen += [r.run_id for r in page]
        page = history.list(job="p:a", limit=3, before=page[-1].sort_at)
    assert seen == [f"a{i:02}" for i in reversed(range(10))]


def test_list_refuses_a_negative_limit(store: RunStore) -> None:
    with pytest.raises(ValueError, match="limit must be >= 0"):
        store.list(limit=-1)


def test_running_lists_queued_and_running(history: RunStore) -> None:
    history.add(make("r", job="p:c", status="running", finished_at=None))
    assert [r.run_id for r in history.running()] == ["b04", "r"]


# --- crash recovery ----------------------------------------------------------------------------


def test_mark_interrupted_takes_only_this_hosts_active_runs(store: RunStore, clock: Any) -> None:
    store.add(make("mine-running", status="running", finished_at=None, duration_ms=None))
    store.add(
        RunRecord(
            run_id="mine-queued", job="p:a", status="queued", scheduled_at=at(1), host_id="host-a"
        )
    )
    store.add(make("mine-done", started_at=at(-5), scheduled_at=at(-5), finished_at=at(-4)))
    store.add(make("theirs", status="running", finished_at=None, host_id="host-b"))
    clock.now = at(30)

    changed = store.mark_interrupted("host-a", "host restarted after a crash")

    assert [r.run_id for r in changed] == ["mine-queued", "mine-running"]
    for record in changed:
        assert record.status == "interrupted"
        assert record.reason == "host restarted after a crash"
        assert record.finished_at == at(30)
        assert store.get(record.run_id) == record
    assert store.get("mine-done").status == "success"
    assert store.get("theirs").status == "running"
    assert store.mark_interrupted("host-a", "again") == []


# --- statistics --------------------------------------------------------------------------------


def test_stats_per_job(history: RunStore) -> None:
    stats = history.stats()
    assert list(stats) == ["p:a", "p:b"]
    a = stats["p:a"]
    assert a.total == 10 and a.counts == {"failed": 4, "success": 6}
    assert a.last_run is not None and a.last_run.run_id == "a09"
    assert (a.p50_duration_ms, a.p95_duration_ms) == (500, 1000)
    b = stats["p:b"]
    assert b.counts == {"success": 4, "queued": 1}
    assert b.last_run is not None and b.last_run.run_id == "b04"
    assert (b.p50_duration_ms, b.p95_duration_ms) == (10, 10)


def test_stats_for_one_job_and_for_none(history: RunStore) -> None:
    assert list(history.stats("p:b")) == ["p:b"]
    assert history.stats("p:missing") == {}


def test_stats_without_durations(store: RunStore) -> None:
    store.add(RunRecord(run_id="q", job="p:q", status="queued", scheduled_at=T0))
    only = store.stats()["p:q"]
    assert only.p50_duration_ms is only.p95_duration_ms is None


def same_as_stats(store: RunStore) -> None:
    """The kept tallies say what counting the whole history says."""
    stats = store.stats()
    tallies = store.tallies()
    assert list(tallies) == list(stats)
    for job, tally in tallies.items():
        assert tally.counts == stats[job].counts, job
        assert tally.last_run == stats[job].last_run, job
        assert tally.total == stats[job].total
        assert tally.success_rate == stats[job].success_rate


def test_tallies_count_each_job_and_name_its_newest_run(history: RunStore) -> None:
    same_as_stats(history)
    a = history.tallies(["p:a", "p:missing"])
    assert list(a) == ["p:a"] and a["p:a"].counts == {"failed": 4, "success": 6}
    assert a["p:a"].last_run is not None and a["p:a"].last_run.run_id == "a09"
    assert history.tallies([]) == {}


def test_tallies_follow_every_change_of_a_run(history: RunStore, clock: Any) -> None:
    queued = history.get("b04")
    history.update(queued.model_copy(update={"status": "running", "started_at": at(21)}))
    assert history.tallies(["p:b"])["p:b"].counts == {"success": 4, "running": 1}
    history.update(history.get("a03").model_copy(update={"status": "success"}))  # was failed
    same_as_stats(history)
    assert history.mark_interrupted("host-a", "lost")[0].run_id == "b04"
    assert history.tallies(["p:b"])["p:b"].counts == {"success": 4, "interrupted": 1}
    same_as_stats(history)
    clock.now = at(5) + timedelta(days=1)
    history.prune(older_than_days=1)
    same_as_stats(history)
    history.prune(keep_per_job=1)
    same_as_stats(history)
    assert history.tallies()["p:a"].counts == {"failed": 1}  # a09, every third failed


def test_history_written_before_tallies_is_counted_by_the_migration(
    db_url: str, clock: Any
) -> None:
    engine = dialect.create(dialect.parse_url(db_url))
    # A database from before the tallies: every migration up to the one that adds them.
    tallies_at = next(
        m.version for m in migrations.MIGRATIONS if "per job and status" in m.description
    )
    migrations.upgrade(engine, migrations.MIGRATIONS[: tallies_at - 1])
    existing = {c["name"] for c in inspect(engine).get_columns("runs")}
    with engine.begin() as conn:
        for i, status in enumerate(["success", "failed", "success"]):
            record = make(
                f"r{i}", status=status, scheduled_at=at(i), started_at=at(i), finished_at=at(i)
            )
            row = {k: v for k, v in sql_store._to_row(record).items() if k in existing}
            conn.execute(sql_store.runs.insert().values(row))
    engine.dispose()
    store = SqlRunStore(db_url, clock=clock)
    try:
        assert store.tallies()["example:hello"].counts == {"success": 2, "failed": 1}
        same_as_stats(store)
    finally:
        store.close()


# --- retention ---------------------------------------------------------------------------------


def test_prune_by_age_keeps_active_runs(history: RunStore, clock: Any) -> None:
    history.add(
        make(
            "old-running",
            job="p:a",
            status="running",
            started_at=at(-10_000),
            scheduled_at=at(-10_000),
            finished_at=None,
            duration_ms=None,
        )
    )
    clock.now = at(5) + timedelta(days=1)  # a00..a04 and b00..b03 are over a day old
    assert history.prune(older_than_days=1) == 9
    assert [r.run_id for r in history.list(job="p:a")] == [
        "a09",
        "a08",
        "a07",
        "a06",
        "a05",
        "old-running",
    ]
    assert [r.run_id for r in history.list(job="p:b")] == ["b04"]


def test_prune_keeps_the_newest_per_job(history: RunStore) -> None:
    assert history.prune(keep_per_job=3) == 7 + 2  # a00..a06, b00 and b01 (queued b04 counts)
    assert [r.run_id for r in history.list(job="p:a")] == ["a09", "a08", "a07"]
    assert [r.run_id for r in history.list(job="p:b")] == ["b04", "b03", "b02"]
    assert history.prune(keep_per_job=0) == 5  # the queued b04 survives even that
    assert [r.run_id for r in history.list()] == ["b04"]


def test_prune_with_no_rule_removes_nothing_and_refuses_negatives(history: RunStore) -> None:
    assert history.prune() == 0
    with pytest.raises(ValueError, match="older_than_days must be >= 0"):
        history.prune(older_than_days=-1)
    with pytest.raises(ValueError, match="keep_per_job must be >= 0"):
        history.prune(keep_per_job=-1)


# --- job state ---------------------------------------------------------------------------------


def test_pause_and_resume(store: RunStore) -> None:
    assert store.paused_jobs() == set()
    store.set_paused("p:a", True)
    store.set_paused("p:b", True)
    store.set_paused("p:b", False)
    store.set_paused("p:c", False)
    assert store.paused_jobs() == {"p:a"}


def test_last_fire(store: RunStore) -> None:
    assert store.last_fire("p:a") is None
    store.set_last_fire("p:a", datetime(2025, 3, 30, 14, 0, tzinfo=PLUS2))
    store.set_paused("p:a", True)  # job state rows hold both; neither write clobbers the other
    fired = store.last_fire("p:a")
    assert fired == T0 and fired is not None and fired.utcoffset() == timedelta(0)
    store.set_last_fire("p:a", at(1))
    assert store.last_fire("p:a") == at(1)
    assert store.paused_jobs() == {"p:a"}


def test_state_and_history_survive_a_restart(open_sql: Callable[[], SqlRunStore]) -> None:
    first = open_sql()
    first.set_paused("p:a", True)
    first.set_last_fire("p:a", at(7))
    first.add(make("r1"))
    first.close()

    again = open_sql()
    assert again.paused_jobs() == {"p:a"}
    assert again.last_fire("p:a") == at(7)
    assert again.get("r1") == make("r1")


# --- migrations --------------------------------------------------------------------------------


def versions(store: SqlRunStore) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(migrations.schema_version.c.version)).scalars())


def test_an_empty_file_is_migrated_to_the_schema_queries_use(
    open_sql: Callable[[], SqlRunStore],
) -> None:
    store = open_sql()
    assert versions(store) == list(range(1, LATEST_VERSION + 1))
    found = inspect(store.engine)
    for table in sql_metadata.sorted_tables:
        columns = {c["name"]: c for c in found.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, column.name
    indexes = {i["name"] for i in found.get_indexes("runs")}
    assert {"ix_runs_job_sort_at", "ix_runs_status_sort_at"} <= indexes
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_reopening_applies_nothing_twice(open_sql: Callable[[], SqlRunStore]) -> None:
    open_sql().close()
    assert versions(open_sql()) == list(range(1, LATEST_VERSION + 1))


def test_a_database_newer_than_the_code_is_refused(
    open_sql: Callable[[], SqlRunStore], db_url: str
) -> None:
    store = open_sql()
    with store.engine.begin() as conn:
        conn.execute(
            migrations.schema_version.insert().values(
                version=LATEST_VERSION + 1, description="from the future", applied_at_us=0
            )
        )
    store.close()
    with pytest.raises(SchemaTooNewError) as caught:
        SqlRunStore(db_url)
    message = str(caught.value)
    assert f"schema version {LATEST_VERSION + 1}" in message
    assert f"versions up to {LATEST_VERSION}" in message
    assert ("plugbox.db" if db_url.startswith("sqlite") else "/store_tests?") in message


def test_a_failing_migration_leaves_the_old_schema(
    open_sql: Callable[[], SqlRunStore],
) -> None:
    store = open_sql()

    def add_column(conn: Any) -> None:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN extra TEXT")

    def broken(conn: Any) -> None:
        raise RuntimeError("migration 3 is broken")

    pending = (
        *migrations.MIGRATIONS,
        migrations.Migration(LATEST_VERSION + 1, "adds a column", add_column),
        migrations.Migration(LATEST_VERSION + 2, "fails", broken),
    )
    with pytest.raises(RuntimeError, match="migration 3 is broken"):
        migrations.upgrade(store.engine, pending)
    assert versions(store) == list(range(1, LATEST_VERSION + 1))
    assert "extra" not in {c["name"] for c in inspect(store.engine).get_columns("runs")}


def test_runs_stored_before_denials_were_recorded_read_back_with_none(
    db_url: str, clock: Any
) -> None:
    engine = dialect.create(dialect.parse_url(db_url))
    migrations.upgrade(engine, migrations.MIGRATIONS[:1])  # a database from plugbox 0.1.0
    old = make("r-old")
    later = {"denials", "requested_by", "cancelled_by"}  # columns of later migrations
    row = {k: v for k, v in sql_store._to_row(old).items() if k not in later}
    with engine.begin() as conn:
        conn.execute(sql_store.runs.insert().values(row))
    engine.dispose()
    store = SqlRunStore(db_url, clock=clock)
    try:
        assert store.get("r-old") == old
        assert store.get("r-old").denials == ()  # type: ignore[union-attr]
    finally:
        store.close()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="use MemoryRunStore"):
        SqlRunStore("sqlite://")


# --- threads -----------------------------------------------------------------------------------


def test_four_threads_writing_lose_nothing(store: RunStore) -> None:
    per_thread = 50
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                run_id = f"w{worker}-{i:03}"
                queued = RunRecord(
                    run_id=run_id,
                    job=f"p:w{worker}",
                    status="running",
                    scheduled_at=at(i),
                    started_at=at(i),
                    host_id="host-a",
                )
                store.add(queued)
                store.update(
                    make(
                        run_id,
                        job=f"p:w{worker}",
                        started_at=at(i),
                        scheduled_at=at(i),
                        finished_at=at(i),
                        duration_ms=i,
                    )
                )
                store.set_last_fire(f"p:w{worker}", at(i))
                store.set_paused("p:shared", i % 2 == 0)
                store.list(limit=5)
        except BaseException as err:  # surfaced below, with the thread's own traceback
            errors.append(err)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    everything = store.list(limit=10_000)
    assert len(everything) == 4 * per_thread
    assert {r.status for r in everything} == {"success"}
    assert store.running() == []
    for worker in range(4):
        assert store.last_fire(f"p:w{worker}") == at(per_thread - 1)
        assert store.stats(f"p:w{worker}")[f"p:w{worker}"].total == per_thread
    assert store.paused_jobs() == set()  # every thread's last write was "not paused"


def test_memory_store_is_a_run_store() -> None:
    assert isinstance(MemoryRunStore(), RunStore)


def test_a_unique_beginning_of_a_run_id_names_the_run(store: RunStore) -> None:
    for run_id in ("abc123", "abd456", "x_%1", "x_%2", "xy"):
        store.add(make(run_id))
    assert store.resolve_id("abc") == "abc123"
    assert store.resolve_id("abc123") == "abc123"
    assert store.resolve_id("xy") == "xy"  # exact beats being a prefix
    with pytest.raises(
        RunLookupError, match=r"'ab' starts more than one run id \(abc123, abd456\)"
    ):
        store.resolve_id("ab")
    with pytest.raises(RunLookupError, match="runs list --json"):
        store.resolve_id("zzz")
    with pytest.raises(RunLookupError):
        store.resolve_id("")
    # LIKE wildcards in what the user typed are plain characters
    assert store.resolve_id("x_%1") == "x_%1"
    with pytest.raises(RunLookupError, match="starts more than one"):
        store.resolve_id("x_%")
    with pytest.raises(RunLookupError, match="no run"):
        store.resolve_id("x%")


def test_run_id_prefixes_are_case_sensitive_and_glob_characters_are_plain(
    store: RunStore,
) -> None:
    for run_id in ("abc1", "ABD2", "g*1", "g?2", "g[3]", "h1"):
        store.add(make(run_id))
    assert store.resolve_id("AB") == "ABD2"  # SQLite's LIKE would also see abc1
    assert store.resolve_id("ab") == "abc1"
    with pytest.raises(RunLookupError, match="no run"):
        store.resolve_id("aBc")
    assert store.resolve_id("g*") == "g*1"
    assert store.resolve_id("g?") == "g?2"
    assert store.resolve_id("g[") == "g[3]"
    with pytest.raises(RunLookupError, match="no run"):
        store.resolve_id("?")


def test_nul_characters_in_what_a_job_wrote_are_kept(store: RunStore) -> None:
    # PostgreSQL refuses NUL in text columns and in jsonb; a job may print one all the same.
    record = make(
        "r-nul",
        output="before\x00after",
        result={"k\x00": "v\x00"},
        log=[{"level": "info", "message": "a\x00b", "at": 1.5}],
    )
    assert record.output == "before\ufffdafter"  # the same text in every store
    store.add(record)
    stored = store.get("r-nul")
    assert stored == record
    assert stored.result == {"k\x00": "v\x00"}
    assert stored.log[0].message == "a\x00b"
