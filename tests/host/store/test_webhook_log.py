"""The webhook delivery log and each job's last success, on a real SQLite file (and in memory
where the run store has that backend too)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import column, inspect, table

from plugbox.host.store import (
    DeliveryLog,
    RunRecord,
    RunStore,
    SqlRunStore,
    WebhookAttempt,
    dialect,
)
from plugbox.host.store import sql as sql_store
from plugbox.host.store.migrations import MIGRATIONS, upgrade
from plugbox.host.store.webhooks import NewDelivery

T0 = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)


def run(run_id: str, status: str, finished: datetime, job: str = "a:b") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        job=job,
        status=status,  # type: ignore[arg-type]
        scheduled_at=finished - timedelta(seconds=1),
        started_at=finished - timedelta(seconds=1),
        finished_at=finished,
        duration_ms=1000,
    )


def new(delivery_id: str, run_id: str = "r1") -> NewDelivery:
    return NewDelivery(
        delivery_id=delivery_id,
        run_id=run_id,
        job="a:b",
        event="run.failed",
        url="http://127.0.0.1:9/hook",
        body="{}",
        give_up_at=T0 + timedelta(hours=1),
    )


def test_last_success_is_the_latest_finish_of_a_success(store: RunStore) -> None:
    store.add(run("1", "success", T0))
    store.add(run("2", "failed", T0 + timedelta(minutes=1)))
    store.add(run("3", "success", T0 + timedelta(minutes=2), job="c:d"))
    running = run("4", "success", T0 + timedelta(minutes=3))
    store.add(running.model_copy(update={"status": "running", "finished_at": None}))
    assert store.last_successes() == {"a:b": T0, "c:d": T0 + timedelta(minutes=2)}
    store.update(running)
    store.add(run("5", "success", T0 + timedelta(minutes=1)))  # recorded late: an older finish
    assert store.last_successes()["a:b"] == T0 + timedelta(minutes=3)


def test_an_old_database_is_migrated_and_its_last_successes_filled_in(
    db_url: str, open_sql: Callable[[], SqlRunStore]
) -> None:
    engine = dialect.create(dialect.parse_url(db_url))
    upgrade(engine, MIGRATIONS[:3])  # the schema before webhooks and last successes
    with engine.begin() as conn:
        for record in (
            run("1", "success", T0),
            run("2", "success", T0 + timedelta(minutes=5)),
            run("3", "failed", T0),
        ):
            conn.execute(sql_store.runs.insert().values(sql_store._to_row(record)))
        conn.execute(
            table("job_state", column("job"), column("paused")).insert(),
            {"job": "x:y", "paused": True},
        )
    engine.dispose()
    store = open_sql()
    assert store.last_successes() == {"a:b": T0 + timedelta(minutes=5)}
    assert store.paused_jobs() == {"x:y"}
    tables = set(inspect(store.engine).get_table_names())
    assert {"webhook_deliveries", "webhook_attempts"} <= tables


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_lapses(
    open_sql: Callable[[], SqlRunStore],
) -> None:
    log = DeliveryLog(open_sql().engine)
    assert log.add([new("m1"), new("m2")], T0, max_pending=10) == []
    other = DeliveryLog(open_sql().engine)  # another process on the same file
    lease = T0 + timedelta(seconds=40)
    assert [c.delivery_id for c in log.claim(T0, lease, limit=1)] == ["m1"]
    assert [c.delivery_id for c in other.claim(T0, lease)] == ["m2"]
    assert other.claim(T0 + timedelta(seconds=39), lease) == []
    # Its sender died mid-attempt: once the lease lapses, the delivery is due again.
    assert {c.delivery_id for c in other.claim(T0 + timedelta(seconds=41), lease)} == {"m1", "m2"}
    assert log.claim(T0, lease, only={"m3"}) == []


def test_an_attempt_is_kept_and_sets_the_next_one(open_sql: Callable[[], SqlRunStore]) -> None:
    log = DeliveryLog(open_sql().engine)
    log.add([new("m1")], T0, max_pending=10)
    (claimed,) = log.claim(T0, T0 + timedelta(seconds=40))
    retry = T0 + timedelta(seconds=2)
    attempt = WebhookAttempt(attempt=1, at=T0, duration_ms=12, status_code=503, next_retry_at=retry)
    log.record(claimed.delivery_id, attempt, "pending")
    (delivery,) = log.list(run_id="r1")
    assert delivery.state == "pending" and delivery.next_attempt_at == retry
    assert delivery.attempts == (attempt,)
    assert log.next_due() == retry
    assert log.claim(T0 + timedelta(seconds=1), T0 + timedelta(seconds=40)) == []
    (again,) = log.claim(retry, retry + timedelta(seconds=40))
    assert again.attempts == 1


def test_beyond_the_bound_a_delivery_is_recorded_dropped(
    open_sql: Callable[[], SqlRunStore],
) -> None:
    log = DeliveryLog(open_sql().engine)
    assert log.add([new("m1"), new("m2"), new("m3")], T0, max_pending=2) == ["m3"]
    states = {d.delivery_id: (d.state, d.reason) for d in log.list()}
    assert states["m1"][0] == states["m2"][0] == "pending"
    assert states["m3"][0] == "dropped"
    assert "2 deliveries were already waiting" in (states["m3"][1] or "")
    assert log.count("pending") == 2


def test_prune_removes_only_finished_old_deliveries(open_sql: Callable[[], SqlRunStore]) -> None:
    log = DeliveryLog(open_sql().engine)
    log.add([new("old-done"), new("old-pending")], T0, max_pending=10)
    log.add([new("new-done")], T0 + timedelta(days=9), max_pending=10)
    log.finish("old-done", "abandoned", "gone")
    log.finish("new-done", "abandoned", "gone")
    assert log.prune(T0 + timedelta(days=1)) == 1
    assert {d.delivery_id for d in log.list()} == {"old-pending", "new-done"}
