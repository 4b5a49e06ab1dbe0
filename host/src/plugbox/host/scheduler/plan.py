"""The scheduling core: which job fires when, decided from a clock, with no threads and no I/O.

A :class:`Plan` holds the scheduled jobs and a heap with one live entry per job, ordered by
when its next fire is due. The host's loop is::

    immediate = plan.load(jobs, last_fire=store.last_fire, paused=store.paused(), starting=True)
    while running:
        dispatch(immediate + plan.due())   # concurrency_decision, worker pool, run records
        sleep_until(plan.next_wakeup())    # or until something changes (pause, reload, ...)

Only jobs that fired are recomputed, and within one :meth:`Plan.load` or :meth:`Plan.due` call
jobs with the same (expression, zone) share each ``next_after`` computation, so 100,000 jobs on
a few dozen distinct schedules cost a few dozen cron evaluations per distinct fire time.

Every instant a Plan returns is an aware UTC datetime. docs/scheduling.md is the operator's
view of the same rules.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from plugbox.host.scheduler.clock import Clock
from plugbox.sdk.errors import ScheduleError
from plugbox.sdk.firing import backoff_ms, latest_fires, missed_fires
from plugbox.sdk.manifest import Concurrency, JobSpec, Misfire
from plugbox.sdk.schedules import Schedule, as_utc, check_timezone, parse_schedule

__all__ = ["Fire", "Plan", "ScheduledJob", "Trigger"]

#: Why a run starts. The Plan produces the first three; "manual" is for fires the host builds
#: for ``plugbox jobs run`` / ``POST /jobs/{id}/trigger`` (they may be retried like any other).
Trigger = Literal["schedule", "startup", "retry", "manual"]

_MICROSECOND = timedelta(microseconds=1)
# Lazy deletion leaves dead entries in the heap; rebuild it once they outnumber the live ones.
_COMPACT_AT = 1024

# (due_at, -priority, sequence, fire): the sequence is unique, so a Fire is never compared.
_Entry = tuple[datetime, int, int, "Fire"]
# (resolved expression, zone, after) -> next instant in UTC, or None if it never fires again.
_NextCache = dict[tuple[str, str, datetime], datetime | None]


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """What the scheduler needs to know about one job; build it with :meth:`from_spec`."""

    key: str  #: "PLUGIN:JOB"
    schedule: Schedule | None  #: None: runs only when triggered (or on startup)
    priority: int = 5
    misfire: Misfire = "run_once"
    catch_up_limit: int = 10
    jitter_ms: int = 0
    run_on_startup: bool = False
    enabled: bool = True
    concurrency: Concurrency = "forbid"
    retries: int = 0
    retry_delay_ms: int = 1_000
    retry_max_delay_ms: int = 300_000

    def __post_init__(self) -> None:
        if self.catch_up_limit < 1:
            raise ValueError(f"{self.key}: catch_up_limit must be 1 or more")
        if self.jitter_ms < 0 or self.retries < 0:
            raise ValueError(f"{self.key}: jitter_ms and retries must be 0 or more")

    @classmethod
    def from_spec(
        cls,
        plugin_id: str,
        spec: JobSpec,
        *,
        schedule_override: str | None = None,
        timezone_override: str | None = None,
        enabled_override: bool | None = None,
        priority_override: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ScheduledJob:
        """The job ``PLUGIN:JOB`` as declared, with the operator's overrides applied.

        ``${NAME}`` in the schedule is resolved here from ``env`` (default: the host's
        environment). A bad schedule or zone raises ScheduleError naming the job.
        """
        key = f"{plugin_id}:{spec.id}"
        expression = spec.schedule if schedule_override is None else schedule_override
        zone = spec.timezone if timezone_override is None else timezone_override
        try:
            schedule = None if expression is None else parse_schedule(expression, zone, env)
            if schedule is None:
                check_timezone(zone)
        except ScheduleError as error:
            raise ScheduleError(error.expression, f"{error.reason} (job {key})") from None
        return cls(
            key=key,
            schedule=schedule,
            priority=spec.priority if priority_override is None else priority_override,
            misfire=spec.misfire,
            catch_up_limit=spec.catch_up_limit,
            jitter_ms=spec.jitter_ms,
            run_on_startup=spec.run_on_startup,
            enabled=spec.enabled if enabled_override is None else enabled_override,
            concurrency=spec.concurrency,
            retries=spec.retries,
            retry_delay_ms=spec.retry_delay_ms,
            retry_max_delay_ms=spec.retry_max_delay_ms,
        )


@dataclass(frozen=True, slots=True)
class Fire:
    """One decision to start a run of ``job``."""

    job: str  #: "PLUGIN:JOB"
    scheduled_at: datetime  #: the cron instant (for a retry: that of the first attempt), UTC
    due_at: datetime  #: when it may start: scheduled_at + jitter, or a retry's backoff, UTC
    trigger: Trigger
    attempt: int = 1  #: counts from 1; a retry of attempt n is attempt n + 1
    first_run_id: str | None = None  #: for retries: the run id of attempt 1
    priority: int = 5  #: 0-10, higher starts first when workers are busy
    #: a manual run asked for through the API: its id, already recorded ``queued``
    run_id: str | None = None
    requested_by: str | None = None  #: who asked for a manual run (an API token's name)


class Plan:
    """The jobs, their next fires and pending retries, driven by ``clock``.

    ``rng`` draws jitter and retry-delay variation; pass ``random.Random(seed)`` for
    repeatable tests.
    """

    def __init__(self, clock: Clock, *, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = random.Random() if rng is None else rng
        self._jobs: dict[str, ScheduledJob] = {}
        self._paused: set[str] = set()
        self._heap: list[_Entry] = []
        self._sequence = itertools.count()
        self._pending: dict[str, tuple[int, Fire]] = {}  # job -> its live scheduled entry
        self._retries: dict[int, Fire] = {}  # sequence -> waiting retry
        self._fired: dict[str, datetime] = {}  # job -> last scheduled instant handed out
        self._dead = 0  # entries in the heap that are no longer live

    # -- queries ---------------------------------------------------------------------------

    @property
    def paused(self) -> frozenset[str]:
        return frozenset(self._paused)

    def job(self, key: str) -> ScheduledJob | None:
        return self._jobs.get(key)

    def next_fire(self, key: str) -> Fire | None:
        """The job's next scheduled fire (not retries), or None if nothing is scheduled."""
        pending = self._pending.get(key)
        return None if pending is None else pending[1]

    def next_wakeup(self) -> datetime | None:
        """When the earliest fire or retry is due (maybe already past), or None if none is."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][0] if heap else None

    # -- loading ---------------------------------------------------------------------------

    def load(
        self,
        jobs: Iterable[ScheduledJob],
        *,
        last_fire: Callable[[str], datetime | None],
        paused: Set[str],
        starting: bool,
    ) -> list[Fire]:
        """Replace the plan's jobs with ``jobs`` and return the fires to start now.

        For each enabled, unpaused job the misfire policy decides about the fires missed since
        ``last_fire(key)`` (the last fire the host recorded); with ``starting`` each
        ``run_on_startup`` job also fires once. A job the plan already held with the same
        schedule and jitter keeps its pending fire and has missed nothing, so calling load
        again for a hot reload neither replays nor shifts anything. Waiting retries of jobs
        that stay enabled and unpaused are kept.
        """
        now = as_utc(self._clock.now(), "clock.now()")
        # Build the new state aside and swap it in at the end, so that an error (a job listed
        # twice, a failing last_fire) leaves the plan as it was.
        jobs_by_key: dict[str, ScheduledJob] = {}
        held: set[str] = set(paused)
        pending: dict[str, tuple[int, Fire]] = {}
        fired: dict[str, datetime] = {}
        heap: list[_Entry] = []
        immediate: list[Fire] = []
        next_cache: _NextCache = {}
        missed_cache: dict[tuple[str, str, datetime, Misfire, int], list[datetime]] = {}

        def schedule_fire(fire: Fire) -> None:
            seq = next(self._sequence)
            pending[fire.job] = (seq, fire)
            heap.append((fire.due_at, -fire.priority, seq, fire))

        for job in jobs:
            key = job.key
            if key in jobs_by_key:
                raise ValueError(f"job {key} is listed twice")
            jobs_by_key[key] = job
            if key in self._fired:
                fired[key] = self._fired[key]
            if not job.enabled or key in held:
                continue
            if starting and job.run_on_startup:
                immediate.append(Fire(key, now, now, "startup", priority=job.priority))
            schedule = job.schedule
            if schedule is None:
                continue
            previous, kept = self._jobs.get(key), self._pending.get(key)
            if kept is not None and previous is not None and _timing(previous) == _timing(job):
                fire = kept[1]
                schedule_fire(
                    fire if fire.priority == job.priority else replace(fire, priority=job.priority)
                )
                continue
            after = now - _MICROSECOND  # a fire due exactly now is scheduled, not missed
            last = last_fire(key)
            if last is not None:
                last = as_utc(last, f"last_fire({key!r})")
                after = max(after, last)
                fired[key] = max(last, fired.get(key, last))
                if job.misfire != "skip":
                    mkey = (
                        schedule.resolved,
                        schedule.timezone,
                        last,
                        job.misfire,
                        job.catch_up_limit,
                    )
                    missed = missed_cache.get(mkey)
                    if missed is None:
                        missed = missed_fires(schedule, last, now, job.misfire, job.catch_up_limit)
                        missed_cache[mkey] = missed
                    immediate.extend(
                        Fire(key, instant, now, "schedule", priority=job.priority)
                        for instant in missed
                    )
            following = _next_after(schedule, after, next_cache)
            if following is not None:
                schedule_fire(self._fire(job, following))
        retries: dict[int, Fire] = {}
        for seq, retry in self._retries.items():
            owner = jobs_by_key.get(retry.job)
            if owner is not None and owner.enabled and retry.job not in held:
                retries[seq] = retry
                heap.append((retry.due_at, -retry.priority, seq, retry))
        heapq.heapify(heap)
        self._jobs, self._paused, self._pending, self._retries = jobs_by_key, held, pending, retries
        self._fired, self._heap, self._dead = fired, heap, 0
        immediate.sort(key=_order)
        return immediate

    # -- firing ----------------------------------------------------------------------------

    def due(self) -> list[Fire]:
        """Every fire and retry due by now, ordered by (due_at, -priority); schedules the next.

        If the host fell behind (a suspended machine, a stalled loop, the clock stepped
        forward) so that a job's following fire is due as well, the job does not burst: it
        fires at its latest instant only, or with ``catch_up`` at its latest catch_up_limit
        instants, and those late fires are due now.
        """
        now = as_utc(self._clock.now(), "clock.now()")
        heap = self._heap
        fires: list[Fire] = []
        cache: _NextCache = {}
        while heap and heap[0][0] <= now:
            _, _, seq, fire = heapq.heappop(heap)
            if fire.trigger == "retry":
                if self._retries.pop(seq, None) is None:
                    self._dead -= 1
                else:
                    fires.append(fire)
                continue
            pending = self._pending.get(fire.job)
            if pending is None or pending[0] != seq:
                self._dead -= 1
                continue
            del self._pending[fire.job]
            job = self._jobs[fire.job]
            schedule = job.schedule
            assert schedule is not None  # only jobs with a schedule have entries
            following = _next_after(schedule, fire.scheduled_at, cache)
            if following is None or following > now:
                fires.append(fire)
            else:
                fires.extend(self._overtaken(job, schedule, fire, now))
                following = _next_after(schedule, now, cache)
            self._fired[fire.job] = fires[-1].scheduled_at
            if following is not None:
                self._add(self._fire(job, following))
        fires.sort(key=_order)
        return fires

    def retry(
        self, fire: Fire, *, run_id: str, failed_at: datetime, hold: bool = True
    ) -> Fire | None:
        """Schedule the next attempt after ``fire`` failed, or None if there is none.

        The delay is ``retry_delay_ms * 2**(attempt-1)``, capped at ``retry_max_delay_ms``,
        varied by up to 10%. ``retries=2`` means up to 3 attempts. A job that is unknown,
        disabled or paused gets no retry. The retry is held by the plan and comes out of
        :meth:`due`; it is returned here so the host can record it. With ``hold=False`` the
        plan only computes it: the host queues it in the store itself (``plugbox serve``).
        """
        job = self._jobs.get(fire.job)
        if job is None or not job.enabled or fire.job in self._paused:
            return None
        if fire.attempt > job.retries:
            return None
        delay = backoff_ms(fire.attempt, job.retry_delay_ms, job.retry_max_delay_ms, self._rng)
        retry = Fire(
            job=fire.job,
            scheduled_at=fire.scheduled_at,
            due_at=as_utc(failed_at, "failed_at") + timedelta(milliseconds=delay),
            trigger="retry",
            attempt=fire.attempt + 1,
            first_run_id=fire.first_run_id or run_id,
            priority=job.priority,
        )
        if not hold:
            return retry
        seq = next(self._sequence)
        self._retries[seq] = retry
        heapq.heappush(self._heap, (retry.due_at, -retry.priority, seq, retry))
        return retry

    # -- changes ---------------------------------------------------------------------------

    def pause(self, key: str) -> None:
        """Stop firing ``key``: its next fire and waiting retries are dropped.

        Unknown keys are remembered too, so a job added later starts paused.
        """
        self._paused.add(key)
        self._drop(key, retries=True)

    def resume(self, key: str) -> None:
        """Fire ``key`` again from now on. Fires missed while paused are not replayed."""
        if key not in self._paused:
            return
        self._paused.discard(key)
        job = self._jobs.get(key)
        if job is not None:
            self._schedule_from_now(job)

    def remove(self, key: str) -> bool:
        """Forget ``key`` (its pause state is kept); False if the plan did not know it."""
        self._drop(key, retries=True)
        self._fired.pop(key, None)
        return self._jobs.pop(key, None) is not None

    def upsert(self, job: ScheduledJob) -> None:
        """Add ``job`` or replace its definition.

        With the same schedule and jitter the pending fire stays as it was (only its priority
        follows); a changed schedule fires next at its first instant from now. Nothing missed
        is replayed. Disabling drops the pending fire and waiting retries.
        """
        key = job.key
        previous = self._jobs.get(key)
        self._jobs[key] = job
        if not job.enabled:
            self._drop(key, retries=True)
            return
        pending = self._pending.get(key)
        if pending is not None and previous is not None and _timing(previous) == _timing(job):
            if pending[1].priority != job.priority:
                self._drop(key, retries=False)
                self._add(replace(pending[1], priority=job.priority))
            return
        self._drop(key, retries=False)
        if key not in self._paused:
            self._schedule_from_now(job)

    # -- internals -------------------------------------------------------------------------

    def _schedule_from_now(self, job: ScheduledJob) -> None:
        if not job.enabled or job.schedule is None or job.key in self._pending:
            return
        now = as_utc(self._clock.now(), "clock.now()")
        after = now - _MICROSECOND
        fired = self._fired.get(job.key)
        if fired is not None and fired > after:
            after = fired  # never hand out the same instant twice (pause and resume at once)
        following = _next_after(job.schedule, after, {})
        if following is not None:
            self._add(self._fire(job, following))

    def _overtaken(
        self, job: ScheduledJob, schedule: Schedule, fire: Fire, now: datetime
    ) -> list[Fire]:
        # `fire` and at least its following instant are due: the host fell behind.
        keep = job.catch_up_limit if job.misfire == "catch_up" else 1
        later = latest_fires(schedule, fire.scheduled_at, now, keep)
        chosen = [fire.scheduled_at, *later][-keep:]
        return [
            fire
            if instant == fire.scheduled_at
            else Fire(job.key, instant, now, "schedule", priority=job.priority)
            for instant in chosen
        ]

    def _fire(self, job: ScheduledJob, scheduled_at: datetime) -> Fire:
        due_at = scheduled_at
        if job.jitter_ms:
            due_at += timedelta(milliseconds=self._rng.randint(0, job.jitter_ms))
        return Fire(job.key, scheduled_at, due_at, "schedule", priority=job.priority)

    def _add(self, fire: Fire) -> None:
        seq = next(self._sequence)
        self._pending[fire.job] = (seq, fire)
        heapq.heappush(self._heap, (fire.due_at, -fire.priority, seq, fire))

    def _drop(self, key: str, *, retries: bool) -> None:
        if self._pending.pop(key, None) is not None:
            self._dead += 1
        if retries:
            for seq in [seq for seq, fire in self._retries.items() if fire.job == key]:
                del self._retries[seq]
                self._dead += 1
        if self._dead > _COMPACT_AT and self._dead > len(self._heap) // 2:
            self._heap = [entry for entry in self._heap if self._live(entry)]
            heapq.heapify(self._heap)
            self._dead = 0

    def _live(self, entry: _Entry) -> bool:
        seq, fire = entry[2], entry[3]
        if fire.trigger == "retry":
            return seq in self._retries
        pending = self._pending.get(fire.job)
        return pending is not None and pending[0] == seq


def _timing(job: ScheduledJob) -> tuple[str | None, str | None, int]:
    schedule = job.schedule
    if schedule is None:
        return None, None, job.jitter_ms
    return schedule.resolved, schedule.timezone, job.jitter_ms


def _next_after(schedule: Schedule, after: datetime, cache: _NextCache) -> datetime | None:
    # Jobs sharing an expression and zone share the answer: on a host with 100,000 jobs on a
    # few dozen schedules this is what keeps load() and a busy due() cheap.
    key = (schedule.resolved, schedule.timezone, after)
    try:
        return cache[key]
    except KeyError:
        pass
    try:
        following: datetime | None = schedule.next_after(after).astimezone(UTC)
    except ScheduleError:  # it never fires again (an interval job inside DST gaps, year 9999)
        following = None
    cache[key] = following
    return following


def _order(fire: Fire) -> tuple[datetime, int]:
    return fire.due_at, -fire.priority
