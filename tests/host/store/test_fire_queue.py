"""The fire queue on SQLite and PostgreSQL: one row per fire, claims, leases, fencing, recovery."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from plugbox.host.scheduler import ScheduledJob
from plugbox.host.scheduler.admission import Admission, Waiting, admit
from plugbox.host.store import RunRecord, SqlRunStore
from plugbox.host.store.queue import ClaimResult, Enqueue, FireQueue, fire_key
from plugbox.sdk.schedules import parse_schedule

from .test_store import same_as_stats

EVERY_SECOND = parse_schedule("* * * * * *", "UTC")


@pytest.fixture
def store(db_url: str) -> Iterator[SqlRunStore]:
    with SqlRunStore(db_url) as opened:
        yield opened


def replica(store: SqlRunStore, name: str, lease_s: float = 5.0) -> FireQueue:
    return FireQueue(store.engine, owner=f"{name}/1", host_id=name, lease_s=lease_s)


def queued(run_id: str, job: str, at: datetime, trigger: str = "schedule") -> RunRecord:
    return RunRecord(run_id=run_id, job=job, status="queued", trigger=trigger, scheduled_at=at)


def put(queue: FireQueue, run_id: str, job: str, at: datetime, priority: int = 5) -> bool:
    return queue.enqueue(
        queued(run_id, job, at), key=fire_key(job, at, 1), priority=priority, due_at=at
    )


def jobs(**policies: dict[str, object]) -> dict[str, ScheduledJob]:
    return {
        key: ScheduledJob(key=key, schedule=EVERY_SECOND, **policy)  # type: ignore[arg-type]
        for key, policy in policies.items()
    }


def claim(
    queue: FireQueue,
    known: dict[str, ScheduledJob],
    limit: int,
    caps: dict[str, int] | None = None,
    held: dict[str, int] | None = None,
) -> ClaimResult:
    def decide(fire: Waiting, running: int, waiting: object, now: datetime) -> Admission:
        return admit(fire, known.get(fire.job), running=running, waiting=waiting, now=now)  # type: ignore[arg-type]

    plugins = {key.partition(":")[0] for key in known}
    return queue.claim(limit, plugins=plugins, held=held or {}, caps=caps or {}, decide=decide)


def test_the_same_fire_is_stored_once_whoever_records_it(store: SqlRunStore) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    a, b = replica(store, "a"), replica(store, "b")
    assert put(a, "r1", "p:j", at) is True
    assert put(b, "r2", "p:j", at) is False  # the second replica's insert is a no-op
    assert [r.run_id for r in store.list(job="p:j")] == ["r1"]
    assert store.last_fire("p:j") == at
    put(b, "r0", "p:j", at - timedelta(seconds=5))  # recorded late: last fire does not go back
    assert store.last_fire("p:j") == at


def test_a_claim_takes_what_the_pool_can_start_by_priority(store: SqlRunStore) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(milliseconds=300)
    queue = replica(store, "a")
    known = jobs(**{f"p:j{i}": {"concurrency": "allow"} for i in range(4)})
    for i in range(4):
        put(queue, f"r{i}", f"p:j{i}", at, priority=i)
    future = at + timedelta(hours=1)
    put(queue, "later", "p:j0", future, priority=10)  # not due: never claimed early
    result = claim(queue, known, limit=2)
    assert [c.record.run_id for c in result.started] == ["r3", "r2"]
    assert all(c.record.status == "running" for c in result.started)
    assert {r.run_id: r.status for r in store.list()} == {
        "r3": "running", "r2": "running", "r1": "queued", "r0": "queued", "later": "queued"
    }  # fmt: skip


def test_a_plugins_cap_leaves_its_fires_waiting_for_others(store: SqlRunStore) -> None:
    at = datetime.now(UTC) - timedelta(seconds=0.3)
    queue = replica(store, "a")
    known = jobs(**{"greedy:a": {"concurrency": "allow"}, "other:b": {}})
    for i in range(3):
        queue.enqueue(queued(f"g{i}", "greedy:a", at), key=None, priority=10, due_at=at)
    put(queue, "o", "other:b", at, priority=1)
    result = claim(queue, known, limit=3, caps={"greedy": 1})
    assert sorted(c.record.run_id for c in result.started) == ["g0", "o"]


def test_forbid_is_decided_when_the_run_starts(store: SqlRunStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    queue = replica(store, "a")
    known = jobs(**{"p:f": {"concurrency": "forbid"}})
    for i in (1, 2):  # two manual triggers waited together
        queue.enqueue(queued(f"m{i}", "p:f", now, "manual"), key=None, priority=5, due_at=now)
    result = claim(queue, known, limit=2)
    assert [c.record.run_id for c in result.started] == ["m1"]
    assert [(r.run_id, r.status) for r in result.skipped] == [("m2", "skipped")]
    assert "concurrency=forbid" in (result.skipped[0].reason or "")


def test_fires_that_waited_past_their_successor_follow_the_misfire_policy(
    store: SqlRunStore,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    queue = replica(store, "a")
    known = jobs(**{"p:once": {"misfire": "run_once"}, "p:skip": {"misfire": "skip"}})
    for job in known:
        for ago in (20, 10, 5, 3):
            put(queue, f"{job}-{ago}", job, now - timedelta(seconds=ago))
    result = claim(queue, known, limit=8)
    assert [c.record.run_id for c in result.started] == ["p:once-3"]  # the latest, once
    assert len(result.skipped) == 7
    assert all("misfire=" in (r.reason or "") for r in result.skipped)


def test_two_replicas_claiming_at_once_never_take_the_same_fire(store: SqlRunStore) -> None:
    at = datetime.now(UTC) - timedelta(seconds=0.3)
    known = jobs(**{f"p:j{i}": {"concurrency": "allow"} for i in range(40)})
    seed = replica(store, "seed")
    for i in range(40):
        seed.enqueue(queued(f"r{i}", f"p:j{i}", at), key=None, priority=5, due_at=at)
    taken: list[str] = []
    lock = threading.Lock()

    def drain(name: str) -> None:
        queue = replica(store, name)
        while True:
            result = claim(queue, known, limit=3)
            if not result.started:
                return
            with lock:
                taken.extend(c.record.run_id for c in result.started)

    threads = [threading.Thread(target=drain, args=(f"x{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(taken) == sorted(f"r{i}" for i in range(40))  # each exactly once


def test_a_lapsed_lease_is_recovered_and_the_late_owner_is_fenced_off(
    store: SqlRunStore,
) -> None:
    at = datetime.now(UTC) - timedelta(seconds=5)
    owner, rescuer = replica(store, "a", lease_s=0.2), replica(store, "b")
    known = jobs(**{"p:j": {}})
    owner.enqueue(queued("r1", "p:j", at, "manual"), key=None, priority=5, due_at=at)
    (claimed,) = claim(owner, known, limit=1).started
    assert rescuer.recover("lease lapsed") == []  # still within its lease
    assert owner.renew({"r1": claimed.epoch}) == set()
    deadline = owner.now() + timedelta(seconds=10)
    recovered: list[RunRecord] = []
    while not recovered and owner.now() < deadline:  # the database's clock decides
        recovered = rescuer.recover("lease lapsed")
    assert [(r.run_id, r.status) for r in recovered] == [("r1", "interrupted")]
    assert owner.renew({"r1": claimed.epoch}) == {"r1"}  # lost: the owner must stop
    late = claimed.record.model_copy(update={"status": "success", "finished_at": datetime.now(UTC)})
    assert owner.finish(late, claimed.epoch) is False  # fenced: the recovery's record stands
    assert store.get("r1").status == "interrupted"


def test_a_waiting_run_is_cancelled_only_while_it_waits(store: SqlRunStore) -> None:
    at = datetime.now(UTC) - timedelta(seconds=1)
    queue = replica(store, "a")
    queue.enqueue(queued("r1", "p:j", at, "manual"), key=None, priority=5, due_at=at)
    cancelled = store.get("r1").model_copy(
        update={"status": "cancelled", "finished_at": datetime.now(UTC)}
    )
    claim(queue, jobs(**{"p:j": {}}), limit=1)
    assert queue.cancel_queued(cancelled) is False  # claimed first
    assert store.get("r1").status == "running"


def test_a_batch_of_fires_is_stored_in_one_go_without_duplicates(store: SqlRunStore) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    a, b = replica(store, "a"), replica(store, "b")

    def batch(prefix: str) -> list[Enqueue]:
        return [
            Enqueue(queued(f"{prefix}{i}", f"p:j{i}", at), fire_key(f"p:j{i}", at, 1), 5, at)
            for i in range(3)
        ]

    assert a.enqueue_many(batch("a")[:2]) == ["a0", "a1"]
    assert b.enqueue_many(batch("b")) == ["b2"]  # the two a recorded first are left out
    assert sorted(r.run_id for r in store.list()) == ["a0", "a1", "b2"]
    assert {store.last_fire(f"p:j{i}") for i in range(3)} == {at}


def test_a_backlog_is_decided_in_one_claim_and_the_tallies_follow_it(store: SqlRunStore) -> None:
    """Overload: every job has fires that waited past its next instant and one that is fresh.

    One claim skips every stale fire (misfire=run_once) and starts each job's fresh one, with
    set-based writes; the kept tallies still agree with counting the history, and the leases
    renew in one statement for the runs still held.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    a = replica(store, "a")
    fires = [
        Enqueue(
            queued(f"j{j}s{s}", f"p:j{j}", now - timedelta(seconds=s)),
            fire_key(f"p:j{j}", now - timedelta(seconds=s), 1),
            5,
            now - timedelta(seconds=s),
        )
        for j in range(30)
        for s in range(5)  # s = 0 is fresh; 1..4 waited past their next instant
    ]
    assert len(a.enqueue_many(fires)) == 150
    same_as_stats(store)  # the queued fires are tallied as they are stored
    result = claim(a, jobs(**{f"p:j{j}": {} for j in range(30)}), limit=30)
    assert sorted(c.record.run_id for c in result.started) == sorted(f"j{j}s0" for j in range(30))
    assert len(result.skipped) == 120
    assert {r.status for r in store.list(limit=1000)} == {"running", "skipped"}
    same_as_stats(store)
    leases = {c.record.run_id: c.epoch for c in result.started}
    assert a.renew(leases) == set()
    assert a.renew({**leases, "j0s0": leases["j0s0"] + 1}) == {"j0s0"}  # a stale epoch is lost
    for claimed in result.started[:10]:
        ended = datetime.now(UTC)
        done = claimed.record.model_copy(update={"status": "success", "finished_at": ended})
        assert a.finish(done, claimed.epoch)
    same_as_stats(store)
