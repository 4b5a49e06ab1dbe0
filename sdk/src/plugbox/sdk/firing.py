"""The scheduler's small decisions, as pure functions: misfire, concurrency, retry backoff.

Nothing here keeps state, reads a clock or touches a run: each function takes what it needs to
decide and returns the decision, so the host can log it and tests can pin it. They live in the
SDK, not the host, so that :mod:`plugbox.sdk.schedule_preview` can show an author what the host
will do with a job -- with the very functions the host's scheduler (``plugbox.host.scheduler``)
calls, so the preview and the host cannot drift apart.
docs/scheduling.md explains the policies to operators.
"""

from __future__ import annotations

import random
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Literal

from plugbox.sdk.manifest import Concurrency, Misfire
from plugbox.sdk.schedules import Schedule

__all__ = [
    "ConcurrencyDecision",
    "backoff_ms",
    "concurrency_decision",
    "latest_fires",
    "missed_fires",
]

ConcurrencyDecision = Literal["start", "skip", "replace"]

#: Retry delays vary by this fraction either way, so jobs that failed together (a database
#: went away) do not all come back in the same millisecond.
RETRY_JITTER = 0.1

_MICROSECOND = timedelta(microseconds=1)
# latest_fires looks back over windows of 1 s, 4 s, 16 s, ... from the end: a few calls find
# the last fire of a daily job, and an every-second job never iterates a whole outage.
_FIRST_WINDOW = timedelta(seconds=1)
_WINDOW_GROWTH = 4
# 2**62 ms is 146 million years; beyond it every delay is the cap anyway.
_MAX_SHIFT = 62


def concurrency_decision(policy: Concurrency, active_runs: int) -> ConcurrencyDecision:
    """What to do with a fire of a job that has ``active_runs`` runs in flight.

    ``start`` it; ``skip`` it (``forbid``: the host records the fire as skipped, saying the
    previous run is still active); or ``replace`` (cancel the active runs, then start).
    """
    if active_runs < 0:
        raise ValueError(f"active_runs must be 0 or more, got {active_runs}")
    if active_runs == 0 or policy == "allow":
        return "start"
    if policy == "forbid":
        return "skip"
    if policy == "replace":
        return "replace"
    raise ValueError(f"unknown concurrency policy {policy!r}; use forbid, allow or replace")


def missed_fires(
    schedule: Schedule, last_fire: datetime | None, now: datetime, policy: Misfire, limit: int
) -> list[datetime]:
    """The fires missed between ``last_fire`` and ``now`` that ``policy`` says to run, oldest first.

    Missed means scheduled strictly after ``last_fire`` (the last fire the host recorded) and
    strictly before ``now``; a fire due exactly ``now`` is not missed, just due. ``skip``: none;
    ``run_once``: the latest missed one; ``catch_up``: the latest ``limit`` of them. A job that
    never fired (``last_fire`` None) has missed nothing. Instants are returned as UTC.
    """
    if policy not in ("skip", "run_once", "catch_up"):
        raise ValueError(f"unknown misfire policy {policy!r}; use skip, run_once or catch_up")
    if last_fire is None or policy == "skip":
        return []
    return latest_fires(
        schedule, last_fire, now - _MICROSECOND, 1 if policy == "run_once" else limit
    )


def latest_fires(schedule: Schedule, after: datetime, until: datetime, n: int) -> list[datetime]:
    """The last ``n`` fire instants in ``(after, until]``, oldest first, as UTC.

    Looks back from ``until`` over growing windows instead of walking forward from ``after``,
    so the cost depends on ``n`` and the schedule's density near ``until``, not on how long
    the host was down.
    """
    if n < 1:
        raise ValueError(f"n must be 1 or more, got {n}")
    after, until = after.astimezone(UTC), until.astimezone(UTC)
    if until <= after:
        return []
    span = _FIRST_WINDOW
    while True:
        start = after if span >= until - after else until - span
        found: deque[datetime] = deque(maxlen=n)
        for fire in schedule.iter_after(start):
            if fire > until:  # different tzinfo objects: compared as instants
                break
            found.append(fire)
        if len(found) == n or start == after:
            return [fire.astimezone(UTC) for fire in found]
        span *= _WINDOW_GROWTH


def backoff_ms(attempt: int, base_ms: int, cap_ms: int, rng: random.Random | None) -> int:
    """The delay before retrying after failed attempt number ``attempt`` (1 = the first run).

    ``base_ms * 2**(attempt-1)``, at most ``cap_ms``, then varied by up to 10% either way with
    ``rng`` (None: no variation) and clamped to ``cap_ms`` again, so the cap is a true maximum.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base_ms < 1 or cap_ms < 1:
        raise ValueError(f"retry delays must be 1 ms or more, got base {base_ms}, cap {cap_ms}")
    shift = attempt - 1
    nominal = cap_ms if shift >= _MAX_SHIFT else min(cap_ms, base_ms << shift)
    if rng is None:
        return nominal
    varied = round(nominal * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER))
    return max(1, min(cap_ms, varied))
