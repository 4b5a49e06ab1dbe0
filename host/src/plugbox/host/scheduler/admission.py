"""Whether a waiting fire may start now: concurrency and misfire, decided when a run starts.

A fire waits as a ``queued`` row until a worker of some replica claims it. What the store knows
at that moment — how many runs of the job are running, which other fires of it are waiting, the
database's "now" — decides, not what was true when the fire became due: a ``forbid`` job that
started a run while this fire waited must not overlap it, and a fire that waited past its job's
next instant is a missed fire, handled by the job's misfire policy like one missed while the host
was down (docs/scheduling.md). Pure functions: :mod:`plugbox.host.store.queue` calls them inside
its claim transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from plugbox.host.scheduler.plan import ScheduledJob
from plugbox.sdk.errors import ScheduleError
from plugbox.sdk.firing import concurrency_decision

__all__ = ["Admission", "Waiting", "admit"]


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued fire as the claim sees it."""

    job: str
    trigger: str
    scheduled_at: datetime


@dataclass(frozen=True, slots=True)
class Admission:
    """``start`` the fire, ``replace`` (cancel the job's running runs, then start) or ``skip``
    it with ``reason``."""

    decision: Literal["start", "replace", "skip"]
    reason: str = ""


def admit(
    fire: Waiting,
    job: ScheduledJob | None,
    *,
    running: int,
    waiting: Sequence[datetime],
    now: datetime,
) -> Admission:
    """Decide about ``fire`` of ``job`` (None: unknown here, treated as ``forbid``).

    ``running``: runs of the job holding a lease now; ``waiting``: the scheduled instants of the
    job's queued scheduled fires (this one included); ``now``: the database's time.
    """
    if fire.trigger == "schedule" and job is not None and job.schedule is not None:
        missed = _missed(fire.scheduled_at, job, waiting, now)
        if missed:
            return Admission("skip", missed)
    decision = concurrency_decision(job.concurrency if job else "forbid", running)
    if decision == "skip":
        return Admission("skip", "the previous run is still active (concurrency=forbid)")
    return Admission(decision)


def _overtaken(instant: datetime, job: ScheduledJob, now: datetime) -> bool:
    """The job's following instant is due too: this fire waited past it."""
    assert job.schedule is not None
    try:
        return job.schedule.next_after(instant) <= now
    except ScheduleError:  # it never fires again
        return False


def _missed(
    instant: datetime, job: ScheduledJob, waiting: Sequence[datetime], now: datetime
) -> str:
    """Why ``instant`` is dropped by the misfire policy, or "" when it may run."""
    if not _overtaken(instant, job, now):
        return ""
    instants = sorted({*waiting, instant})
    late = [x for x in instants if _overtaken(x, job, now)]
    fresh = len(instants) - len(late)
    if job.misfire == "catch_up":
        keep = max(0, job.catch_up_limit - fresh)
    elif job.misfire == "run_once":
        keep = 0 if fresh else 1
    else:
        keep = 0
    if keep and instant in late[-keep:]:
        return ""
    return f"missed: it waited for a worker past the job's next fire time (misfire={job.misfire})"
