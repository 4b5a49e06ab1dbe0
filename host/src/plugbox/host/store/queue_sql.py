"""The fire queue's smaller queries: lease conditions, a job's running and waiting fires, and
the shared last fire. Split from :mod:`plugbox.host.store.queue` to keep it to the protocol."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from plugbox.host.store import dialect
from plugbox.host.store.sql import from_us, job_state, runs


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
