"""The fire queue's smaller queries: lease conditions, a job's running and waiting fires, the
shared last fire, and the set-based writes a claim ends with. Split from
:mod:`plugbox.host.store.queue` to keep it to the protocol.

A claim under overload decides about hundreds of rows; a statement per row (and two more per
tally move) made the database round trips the bottleneck, so that one replica facing 100 due
fires a second started a handful and skipped the rest as stale. Rows, tallies and last fires are
therefore written with one ``executemany`` statement each (psycopg pipelines them).
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from plugbox.host.store import dialect
from plugbox.host.store.sql import from_us, job_state, job_tallies, runs


def lease_held(run_id: str, epoch: int, owner: str) -> tuple[Any, ...]:
    return (
        runs.c.run_id == run_id,
        runs.c.status == "running",
        runs.c.lease_owner == owner,
        runs.c.lease_epoch == epoch,
    )


def advance_last_fire(conn: Connection, job: str, when_us: int) -> None:
    """The shared last fire of ``job`` moves forward only: replicas enqueue out of order."""
    latest = job_state.c.last_fire_us
    done = conn.execute(
        update(job_state)
        .where(job_state.c.job == job, or_(latest.is_(None), latest < when_us))
        .values(last_fire_us=when_us)
    )
    if done.rowcount == 0:
        exists = conn.execute(select(job_state.c.job).where(job_state.c.job == job)).first()
        if exists is None:
            dialect.upsert(
                conn, job_state, {"job": job, "last_fire_us": when_us}, defaults={"paused": False}
            )


def advance_last_fires(conn: Connection, latest: Mapping[str, int]) -> None:
    """:func:`advance_last_fire` for many jobs in one statement (an upsert that only moves
    forward)."""
    if not latest:
        return
    insert = postgresql.insert if dialect.is_postgresql(conn) else sqlite.insert
    statement = insert(job_state).values(
        job=bindparam("b_job"), last_fire_us=bindparam("b_at"), paused=False
    )
    current = job_state.c.last_fire_us
    statement = statement.on_conflict_do_update(
        index_elements=["job"],
        set_={"last_fire_us": statement.excluded.last_fire_us},
        where=or_(current.is_(None), current < statement.excluded.last_fire_us),
    )
    conn.execute(statement, [{"b_job": job, "b_at": at} for job, at in sorted(latest.items())])


def move_tallies(conn: Connection, moves: Counter[tuple[str, str]]) -> None:
    """Add each ``(job, status) -> n`` of ``moves`` to ``job_tallies`` in one statement: the
    set-based form of :func:`plugbox.host.store.sql._tally`, in the caller's transaction."""
    rows = [
        {"b_job": job, "b_status": status, "b_by": by}
        for (job, status), by in sorted(moves.items())
        if by
    ]
    if not rows:
        return
    insert = postgresql.insert if dialect.is_postgresql(conn) else sqlite.insert
    statement = insert(job_tallies).values(
        job=bindparam("b_job"), status=bindparam("b_status"), runs=bindparam("b_by")
    )
    statement = statement.on_conflict_do_update(
        index_elements=["job", "status"],
        set_={"runs": job_tallies.c.runs + statement.excluded.runs},
    )
    conn.execute(statement, rows)


def update_runs(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write many run rows (each with ``run_id`` and the same other columns) in one statement."""
    if not rows:
        return
    columns = [name for name in rows[0] if name != "run_id"]
    statement = (
        update(runs)
        .where(runs.c.run_id == bindparam("b_run_id"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )
    conn.execute(statement, [{f"b_{name}": value for name, value in row.items()} for row in rows])


def try_job_locks(conn: Connection, jobs: Sequence[str], namespace: int) -> set[str]:
    """PostgreSQL: the jobs of ``jobs`` whose transaction-scoped advisory lock this transaction
    took, trying each and never waiting, in one round trip."""
    if not jobs:
        return set()
    query = text(
        "SELECT j FROM unnest(CAST(:jobs AS text[])) AS j "
        "WHERE pg_try_advisory_xact_lock(:ns, hashtext(j))"
    )
    return {
        str(job) for job in conn.execute(query, {"jobs": list(jobs), "ns": namespace}).scalars()
    }


def running_counts(conn: Connection, jobs: Sequence[str]) -> dict[str, int]:
    # Runs of `plugbox jobs run` hold no lease and never counted against serve's policy.
    query = (
        select(runs.c.job, func.count())
        .where(runs.c.job.in_(jobs), runs.c.status == "running", runs.c.lease_owner.is_not(None))
        .group_by(runs.c.job)
    )
    return {job: int(count) for job, count in conn.execute(query)}


def running_ids(conn: Connection, job: str) -> builtins.list[str]:
    query = select(runs.c.run_id).where(
        runs.c.job == job, runs.c.status == "running", runs.c.lease_owner.is_not(None)
    )
    return [str(run_id) for run_id in conn.execute(query).scalars()]


def waiting_instants(conn: Connection, jobs: Sequence[str]) -> dict[str, builtins.list[datetime]]:
    query = select(runs.c.job, runs.c.scheduled_at_us).where(
        runs.c.job.in_(jobs), runs.c.status == "queued", runs.c.trigger == "schedule"
    )
    found: dict[str, builtins.list[datetime]] = {}
    for job, at in conn.execute(query):
        found.setdefault(job, []).append(from_us(at))
    return found
