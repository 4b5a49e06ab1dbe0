"""The scheduling core under a fake clock: no sleeps, no threads, exact instants."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plugbox.host.scheduler import FakeClock, Fire, Plan, ScheduledJob, SystemClock
from plugbox.sdk import JobSpec
from plugbox.sdk.errors import ScheduleError
from plugbox.sdk.schedules import parse_schedule

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def job(
    key: str, expression: str | None = "0 * * * *", zone: str = "UTC", **kw: Any
) -> ScheduledJob:
    schedule = None if expression is None else parse_schedule(expression, zone)
    return ScheduledJob(key=key, schedule=schedule, **kw)


def make_plan(
    jobs: Iterable[ScheduledJob],
    start: datetime = T0,
    *,
    last: Mapping[str, datetime] | None = None,
    paused: set[str] | None = None,
    starting: bool = True,
    seed: int = 1,
) -> tuple[Plan, FakeClock, list[Fire]]:
    clock = FakeClock(start)
    plan = Plan(clock, rng=random.Random(seed))
    stored = dict(last or {})
    immediate = plan.load(jobs, last_fire=stored.get, paused=paused or set(), starting=starting)
    return plan, clock, immediate


def run_until(plan: Plan, clock: FakeClock, end: datetime) -> list[Fire]:
    """What a host loop does: sleep until next_wakeup, collect due(), until `end`."""
    fires: list[Fire] = []
    while (wakeup := plan.next_wakeup()) is not None and wakeup <= end:
        clock.set(max(wakeup, clock.now()))
        fires += plan.due()
    clock.set(end)
    return fires + plan.due()


def instants(fires: Iterable[Fire], key: str) -> list[datetime]:
    return [fire.scheduled_at for fire in fires if fire.job == key]


def every(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out = []
    while start <= end:
        out.append(start)
        start += step
    return out


def days(first: datetime, count: int, *times: tuple[int, int]) -> list[datetime]:
    """`count` consecutive days from `first`, at each (hour, minute) UTC."""
    return [first + timedelta(days=d, hours=h, minutes=m) for d in range(count) for h, m in times]


# -- time zones and DST -------------------------------------------------------------------------

DST_WEEKS = {
    # Spring forward 2025-03-30: 02:00 CET -> 03:00 CEST; 02:xx does not exist.
    "Europe/Berlin spring": (
        "Europe/Berlin",
        utc(2025, 3, 27),
        "30 2 * * *",
        [
            *days(utc(2025, 3, 27), 3, (1, 30)),
            utc(2025, 3, 30, 1, 0),  # at the end of the gap, 03:00 CEST
            *days(utc(2025, 3, 31), 3, (0, 30)),
        ],
        "*/30 2 * * *",
        days(utc(2025, 3, 27), 3, (1, 0), (1, 30)) + days(utc(2025, 3, 31), 3, (0, 0), (0, 30)),
    ),
    # Fall back 2025-10-26: 03:00 CEST -> 02:00 CET; 02:xx happens twice.
    "Europe/Berlin autumn": (
        "Europe/Berlin",
        utc(2025, 10, 23),
        "30 2 * * *",
        days(utc(2025, 10, 23), 4, (0, 30)) + days(utc(2025, 10, 27), 3, (1, 30)),
        "*/30 2 * * *",
        days(utc(2025, 10, 23), 3, (0, 0), (0, 30))
        + days(utc(2025, 10, 26), 1, (0, 0), (0, 30), (1, 0), (1, 30))  # both passes
        + days(utc(2025, 10, 27), 3, (1, 0), (1, 30)),
    ),
    # Spring forward 2025-03-09: 02:00 EST -> 03:00 EDT.
    "America/New_York spring": (
        "America/New_York",
        utc(2025, 3, 6),
        "30 2 * * *",
        [
            *days(utc(2025, 3, 6), 3, (7, 30)),
            utc(2025, 3, 9, 7, 0),  # 03:00 EDT, the end of the gap
            *days(utc(2025, 3, 10), 3, (6, 30)),
        ],
        "*/30 2 * * *",
        days(utc(2025, 3, 6), 3, (7, 0), (7, 30)) + days(utc(2025, 3, 10), 3, (6, 0), (6, 30)),
    ),
    # Fall back 2025-11-02: 02:00 EDT -> 01:00 EST; 01:xx happens twice.
    "America/New_York autumn": (
        "America/New_York",
        utc(2025, 10, 30),
        "30 1 * * *",
        days(utc(2025, 10, 30), 4, (5, 30)) + days(utc(2025, 11, 3), 3, (6, 30)),
        "*/30 1 * * *",
        days(utc(2025, 10, 30), 3, (5, 0), (5, 30))
        + days(utc(2025, 11, 2), 1, (5, 0), (5, 30), (6, 0), (6, 30))
        + days(utc(2025, 11, 3), 3, (6, 0), (6, 30)),
    ),
}


@pytest.mark.parametrize("case", DST_WEEKS.values(), ids=DST_WEEKS.keys())
def test_dst_week(case: tuple[str, datetime, str, list[datetime], str, list[datetime]]) -> None:
    zone, start, fixed, fixed_fires, interval, interval_fires = case
    end = start + timedelta(days=7) - timedelta(seconds=1)
    jobs = [
        job("t:fixed", fixed, zone),
        job("t:interval", interval, zone),
        job("t:quarter", "*/15 * * * *", zone),
    ]
    plan, clock, immediate = make_plan(jobs, start)
    fires = immediate + run_until(plan, clock, end)
    assert instants(fires, "t:fixed") == fixed_fires
    assert instants(fires, "t:interval") == interval_fires
    # Real time: every 15 minutes without a gap or a double, whatever the wall clock did.
    assert instants(fires, "t:quarter") == every(start, end, timedelta(minutes=15))
    assert all(fire.due_at == fire.scheduled_at and fire.due_at.tzinfo is UTC for fire in fires)


def test_seconds_field_fires_every_ten_seconds() -> None:
    plan, clock, _ = make_plan([job("t:tick", "*/10 * * * * *")])
    fires = plan.due()
    for _ in range(60):  # a host polling once a second for a minute
        clock.advance(timedelta(seconds=1))
        fires += plan.due()
    assert instants(fires, "t:tick") == every(T0, T0 + timedelta(minutes=1), timedelta(seconds=10))
    assert plan.next_wakeup() == T0 + timedelta(seconds=70)


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [
        ("skip", [60]),  # the fire that is due now is not missed: it runs on time
        ("run_once", [60]),
        ("catch_up", [30, 40, 50, 60]),
    ],
)
def test_a_stalled_host_does_not_burst(misfire: str, expected: list[int]) -> None:
    # The clock jumps a minute (a suspended laptop): 7 ten-second fires are due at once.
    plan, clock, _ = make_plan([job("t:tick", "*/10 * * * * *", misfire=misfire, catch_up_limit=4)])
    assert instants(plan.due(), "t:tick") == [T0]
    clock.advance(timedelta(minutes=1))
    fires = plan.due()
    assert instants(fires, "t:tick") == [T0 + timedelta(seconds=s) for s in expected]
    assert all(fire.due_at <= clock.now() for fire in fires)
    assert plan.next_wakeup() == T0 + timedelta(seconds=70)


def test_a_fire_due_exactly_at_start_runs_whatever_the_misfire_policy() -> None:
    plan, _, immediate = make_plan(
        [job("t:hourly", misfire="skip")], last={"t:hourly": T0 - timedelta(hours=1)}
    )
    assert immediate == []
    assert instants(plan.due(), "t:hourly") == [T0]


# -- downtime ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("misfire", "limit", "missed_hours"),
    [
        ("skip", 10, []),
        ("run_once", 10, [71]),
        ("catch_up", 5, [67, 68, 69, 70, 71]),
        ("catch_up", 1_000, list(range(1, 72))),
    ],
)
def test_three_days_of_downtime(misfire: str, limit: int, missed_hours: list[int]) -> None:
    now = T0 + timedelta(days=3) - timedelta(minutes=30)  # back up at 23:30 on day 3
    hourly = job("t:hourly", misfire=misfire, catch_up_limit=limit, priority=7)
    plan, clock, immediate = make_plan([hourly], now, last={"t:hourly": T0}, starting=False)
    assert instants(immediate, "t:hourly") == [T0 + timedelta(hours=h) for h in missed_hours]
    assert all(f.due_at == now and f.trigger == "schedule" for f in immediate)
    assert all(f.attempt == 1 and f.priority == 7 for f in immediate)
    # Then the schedule goes on as usual, with nothing replayed twice.
    assert plan.due() == []
    assert plan.next_wakeup() == T0 + timedelta(days=3)
    clock.set(T0 + timedelta(days=3))
    assert instants(plan.due(), "t:hourly") == [T0 + timedelta(days=3)]


def test_downtime_shares_the_work_between_jobs_on_the_same_schedule() -> None:
    jobs = [job(f"t:{n}", "*/5 * * * *", misfire="catch_up", catch_up_limit=3) for n in range(500)]
    now = T0 + timedelta(days=3, minutes=1)
    plan, _, immediate = make_plan(jobs, now, last=dict.fromkeys((j.key for j in jobs), T0))
    assert len(immediate) == 1_500
    assert instants(immediate, "t:42") == [T0 + timedelta(days=3, minutes=m) for m in (-10, -5, 0)]
    assert plan.next_wakeup() == T0 + timedelta(days=3, minutes=5)


def test_a_stored_last_fire_is_never_fired_again() -> None:
    # The host stopped right after recording the fire at T0 and restarts in the same second.
    plan, _, immediate = make_plan([job("t:hourly")], T0, last={"t:hourly": T0})
    assert immediate == []
    assert plan.due() == []
    assert plan.next_wakeup() == T0 + timedelta(hours=1)


# -- priority and jitter -----------------------------------------------------------------------


def test_simultaneous_fires_come_out_highest_priority_first() -> None:
    jobs = [job(f"t:p{p}", "*/5 * * * *", priority=p) for p in (0, 5, 10, 3)]
    plan, clock, _ = make_plan(jobs, T0 + timedelta(minutes=1))
    clock.set(T0 + timedelta(minutes=5))
    assert [f.job for f in plan.due()] == ["t:p10", "t:p5", "t:p3", "t:p0"]


def test_immediate_fires_are_ordered_by_priority_too() -> None:
    jobs = [
        job("t:low", None, run_on_startup=True, priority=1),
        job("t:high", None, run_on_startup=True, priority=9),
    ]
    _, _, immediate = make_plan(jobs)
    assert [(f.job, f.trigger) for f in immediate] == [("t:high", "startup"), ("t:low", "startup")]


def jittered_due_times(seed: int) -> list[timedelta]:
    plan, clock, _ = make_plan([job("t:j", "* * * * *", jitter_ms=20_000)], seed=seed)
    fires = run_until(plan, clock, T0 + timedelta(hours=2) - timedelta(seconds=1))
    assert len(fires) == 120
    return [fire.due_at - fire.scheduled_at for fire in fires]


def test_jitter_is_within_bounds_and_deterministic_with_a_seed() -> None:
    delays = jittered_due_times(seed=3)
    assert all(timedelta(0) <= d <= timedelta(seconds=20) for d in delays)
    assert len(set(delays)) > 100
    assert jittered_due_times(seed=3) == delays
    assert jittered_due_times(seed=4) != delays


def test_a_jittered_fire_is_not_due_before_its_due_time() -> None:
    plan, clock, _ = make_plan(
        [job("t:j", "0 * * * *", jitter_ms=60_000)], T0 + timedelta(minutes=1)
    )
    wakeup = plan.next_wakeup()
    assert wakeup is not None and T0 + timedelta(hours=1) <= wakeup <= T0 + timedelta(
        hours=1, minutes=1
    )
    clock.set(wakeup - timedelta(milliseconds=1))
    assert plan.due() == []
    clock.set(wakeup)
    [fire] = plan.due()
    assert fire.scheduled_at == T0 + timedelta(hours=1) and fire.due_at == wakeup


# -- retries -----------------------------------------------------------------------------------


def test_retries_back_off_exponentially_capped_then_stop() -> None:
    flaky = job("t:flaky", retries=5, retry_delay_ms=1_000, retry_max_delay_ms=5_000, priority=8)
    plan, clock, _ = make_plan([flaky], T0, seed=11)
    [fire] = plan.due()
    chain, failed_at, delays = [fire], T0, []
    while (
        retry := plan.retry(chain[-1], run_id=f"run-{len(chain)}", failed_at=failed_at)
    ) is not None:
        delays.append((retry.due_at - failed_at) / timedelta(milliseconds=1))
        clock.set(retry.due_at - timedelta(milliseconds=1))
        assert plan.due() == []
        clock.set(retry.due_at)
        assert plan.due() == [retry]
        chain.append(retry)
        failed_at = retry.due_at + timedelta(seconds=3)  # the attempt ran for 3 s
    assert [f.attempt for f in chain] == [1, 2, 3, 4, 5, 6]  # retries=5: up to 6 attempts
    for delay, nominal in zip(delays, [1_000, 2_000, 4_000, 5_000, 5_000], strict=True):
        assert 0.9 * nominal <= delay <= min(1.1 * nominal, 5_000)
    assert all(f.trigger == "retry" and f.first_run_id == "run-1" for f in chain[1:])
    assert all(f.scheduled_at == T0 and f.priority == 8 for f in chain)


def test_retries_two_means_three_attempts() -> None:
    plan, _, _ = make_plan([job("t:j", retries=2)])
    [first] = plan.due()
    second = plan.retry(first, run_id="r1", failed_at=T0)
    assert second is not None
    third = plan.retry(second, run_id="r2", failed_at=T0)
    assert third is not None and third.attempt == 3 and third.first_run_id == "r1"
    assert plan.retry(third, run_id="r3", failed_at=T0) is None


def test_a_waiting_retry_sets_the_wakeup_and_is_dropped_by_pause() -> None:
    plan, _, _ = make_plan([job("t:j", retries=1)])
    [first] = plan.due()
    retry = plan.retry(first, run_id="r1", failed_at=T0 + timedelta(seconds=5))
    assert retry is not None and plan.next_wakeup() == retry.due_at
    plan.pause("t:j")
    assert plan.next_wakeup() is None
    assert plan.retry(first, run_id="r1", failed_at=T0) is None  # paused: no new retries


def test_manual_and_startup_fires_can_be_retried() -> None:
    plan, _, [startup] = make_plan([job("t:j", None, retries=1, run_on_startup=True)])
    retry = plan.retry(startup, run_id="r1", failed_at=T0)
    assert retry is not None and retry.trigger == "retry" and retry.scheduled_at == T0
    manual = Fire("t:j", T0, T0, "manual")
    assert plan.retry(manual, run_id="m1", failed_at=T0) is not None
    assert plan.retry(Fire("t:gone", T0, T0, "manual"), run_id="x", failed_at=T0) is None


# -- pause, resume, upsert, remove --------------------------------------------------------------


def test_pause_stops_firing_and_resume_does_not_replay() -> None:
    plan, clock, _ = make_plan([job("t:j"), job("t:other")], T0 + timedelta(minutes=1))
    plan.pause("t:j")
    fires = run_until(plan, clock, T0 + timedelta(hours=3, minutes=30))
    assert instants(fires, "t:j") == []
    assert len(instants(fires, "t:other")) == 3
    plan.resume("t:j")
    assert plan.due() == []  # the three hours it missed are not replayed
    assert plan.next_wakeup() == T0 + timedelta(hours=4)
    assert plan.paused == frozenset()


def test_pause_and_resume_within_one_second_never_fires_an_instant_twice() -> None:
    plan, _, _ = make_plan([job("t:j")])
    assert len(plan.due()) == 1
    plan.pause("t:j")
    plan.resume("t:j")
    assert plan.due() == []
    assert plan.next_wakeup() == T0 + timedelta(hours=1)


def test_paused_jobs_from_the_store_stay_paused_and_miss_nothing() -> None:
    hourly = job("t:j", misfire="catch_up", run_on_startup=True)
    plan, _, immediate = make_plan(
        [hourly], T0 + timedelta(days=1), last={"t:j": T0}, paused={"t:j"}
    )
    assert immediate == [] and plan.next_wakeup() is None
    assert plan.paused == {"t:j"}
    plan.pause("t:later")  # a job not loaded yet is remembered and starts paused
    plan.upsert(job("t:later"))
    assert plan.next_fire("t:later") is None
    plan.resume("t:later")
    assert plan.next_fire("t:later") is not None


def test_upsert_changing_the_schedule() -> None:
    plan, clock, _ = make_plan([job("t:j", "0 * * * *")], T0 + timedelta(minutes=1))
    assert plan.next_wakeup() == T0 + timedelta(hours=1)
    plan.upsert(job("t:j", "*/15 * * * *"))
    assert plan.next_wakeup() == T0 + timedelta(minutes=15)
    fires = run_until(plan, clock, T0 + timedelta(hours=1))
    assert instants(fires, "t:j") == [T0 + timedelta(minutes=m) for m in (15, 30, 45, 60)]
    plan.upsert(job("t:j", "30 6 * * *", "Europe/Berlin"))
    assert plan.next_wakeup() == utc(2025, 1, 1, 5, 30)  # 06:30 CET


def test_upsert_with_the_same_schedule_keeps_the_pending_fire() -> None:
    plan, _, _ = make_plan([job("t:j", jitter_ms=30_000, priority=2)], T0 + timedelta(minutes=1))
    before = plan.next_fire("t:j")
    plan.upsert(job("t:j", jitter_ms=30_000, priority=9, retries=4))
    after = plan.next_fire("t:j")
    assert before is not None and after is not None
    assert (after.due_at, after.priority) == (before.due_at, 9)
    assert plan.next_wakeup() == before.due_at


def test_upsert_a_new_job_and_remove() -> None:
    plan, clock, _ = make_plan([], T0 + timedelta(minutes=1))
    assert plan.next_wakeup() is None
    plan.upsert(job("t:new", "*/5 * * * *"))
    assert plan.next_wakeup() == T0 + timedelta(minutes=5)
    assert plan.remove("t:new") is True
    assert plan.remove("t:new") is False
    assert plan.next_wakeup() is None
    clock.advance(timedelta(hours=1))
    assert plan.due() == []


def test_reloading_keeps_pending_fires_and_replays_nothing() -> None:
    jobs = [
        job("t:a", "*/10 * * * *", jitter_ms=5_000),
        job("t:b", "0 * * * *", misfire="catch_up"),
    ]
    plan, clock, _ = make_plan(jobs, T0 + timedelta(minutes=1))
    pending = plan.next_fire("t:a")
    clock.advance(timedelta(minutes=2))
    # On reload the store's last fire is an hour old; the plan knows better.
    again = plan.load(
        [*jobs, job("t:c", "*/30 * * * *")],
        last_fire=lambda key: None if key == "t:c" else T0 - timedelta(hours=1),
        paused=set(),
        starting=False,
    )
    assert again == []
    assert plan.next_fire("t:a") == pending
    assert plan.next_fire("t:c") is not None
    plan.load(jobs[:1], last_fire=lambda key: None, paused=set(), starting=False)
    assert plan.job("t:b") is None and plan.next_fire("t:b") is None


def test_many_removals_compact_the_heap() -> None:
    jobs = [job(f"t:{n}", "*/5 * * * *") for n in range(3_000)]
    plan, clock, _ = make_plan(jobs, T0 + timedelta(minutes=1))
    for n in range(2_990):
        plan.remove(f"t:{n}")
    clock.set(T0 + timedelta(minutes=5))
    assert sorted(f.job for f in plan.due()) == [f"t:{n}" for n in range(2_990, 3_000)]


# -- startup, enabled, wakeup ------------------------------------------------------------------


def test_run_on_startup_only_when_starting() -> None:
    jobs = [job("t:boot", "0 3 * * *", run_on_startup=True, priority=4), job("t:plain")]
    _, _, immediate = make_plan(jobs, T0 + timedelta(minutes=7))
    assert immediate == [
        Fire("t:boot", T0 + timedelta(minutes=7), T0 + timedelta(minutes=7), "startup", priority=4)
    ]
    _, _, on_reload = make_plan(jobs, T0 + timedelta(minutes=7), starting=False)
    assert on_reload == []


def test_disabled_jobs_never_fire() -> None:
    off = job(
        "t:off", "* * * * * *", enabled=False, run_on_startup=True, retries=3, misfire="catch_up"
    )
    plan, clock, immediate = make_plan([off], T0 + timedelta(days=2), last={"t:off": T0})
    assert immediate == []
    assert plan.next_wakeup() is None
    clock.advance(timedelta(hours=1))
    assert plan.due() == []
    assert plan.retry(Fire("t:off", T0, T0, "manual"), run_id="r", failed_at=T0) is None
    plan.resume("t:off")
    assert plan.next_wakeup() is None
    plan.upsert(job("t:off", "* * * * * *"))  # enabled again
    assert plan.next_wakeup() == T0 + timedelta(days=2, hours=1)
    plan.upsert(off)
    assert plan.next_wakeup() is None


def test_next_wakeup_is_the_earliest_fire() -> None:
    plan, clock, _ = make_plan([], T0 + timedelta(seconds=1))
    assert plan.next_wakeup() is None
    plan.upsert(job("t:daily", "@daily"))
    plan.upsert(job("t:hourly", "@hourly"))
    plan.upsert(job("t:manual", None))
    assert plan.next_wakeup() == T0 + timedelta(hours=1)
    plan.pause("t:hourly")
    assert plan.next_wakeup() == T0 + timedelta(days=1)
    clock.set(T0 + timedelta(days=3))
    assert plan.next_wakeup() == T0 + timedelta(days=1)  # overdue: the host wakes at once
    assert plan.next_fire("t:manual") is None


def test_a_schedule_that_never_fires_again_is_left_out() -> None:
    plan, _, _ = make_plan([job("t:end", "0 0 1 1 *")], utc(9999, 6, 1))
    assert plan.next_wakeup() is None


def test_clock_rules() -> None:
    clock = FakeClock(datetime(2025, 1, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")))
    assert clock.now() == T0 and clock.now().tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="forward only"):
        clock.advance(timedelta(seconds=-1))
    assert clock.set(T0 - timedelta(days=1)) == T0 - timedelta(days=1)
    assert SystemClock().now().tzinfo is UTC


# -- building jobs from specs ------------------------------------------------------------------


def spec(**kw: Any) -> JobSpec:
    return JobSpec(id="hello", handler="pkg.mod:hello", **kw)


def test_from_spec_copies_the_policy() -> None:
    built = ScheduledJob.from_spec(
        "example",
        spec(
            schedule="*/5 * * * *",
            timezone="Europe/Berlin",
            priority=9,
            retries=2,
            jitter_ms="2s",
            misfire="catch_up",
            catch_up_limit=4,
            concurrency="replace",
            run_on_startup=True,
        ),
    )
    assert built.key == "example:hello"
    assert built.schedule == parse_schedule("*/5 * * * *", "Europe/Berlin")
    assert (built.priority, built.retries, built.jitter_ms, built.misfire) == (
        9,
        2,
        2_000,
        "catch_up",
    )
    assert (built.catch_up_limit, built.concurrency, built.run_on_startup) == (4, "replace", True)
    assert (built.retry_delay_ms, built.retry_max_delay_ms, built.enabled) == (1_000, 300_000, True)


def test_from_spec_applies_overrides_and_env() -> None:
    built = ScheduledJob.from_spec(
        "example",
        spec(schedule="${WHEN}"),
        timezone_override="America/New_York",
        enabled_override=False,
        env={"WHEN": "@hourly"},
    )
    assert built.schedule is not None and built.schedule.resolved == "0 0 * * * *"
    assert built.schedule.timezone == "America/New_York" and not built.enabled
    manual = ScheduledJob.from_spec("example", spec(), schedule_override=None)
    assert manual.schedule is None
    moved = ScheduledJob.from_spec("example", spec(schedule="@daily"), schedule_override="@hourly")
    assert moved.schedule is not None and moved.schedule.expression == "@hourly"


@pytest.mark.parametrize(
    ("kw", "override", "message"),
    [
        ({"schedule": "${MISSING} * * * *"}, {}, "environment variable MISSING is not set"),
        ({"schedule": "@daily"}, {"schedule_override": "61 * * * *"}, "minute 61 is outside 0-59"),
        ({}, {"timezone_override": "Berlin"}, "did you mean 'Europe/Berlin'"),
    ],
)
def test_from_spec_errors_name_the_job(
    kw: dict[str, Any], override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        ScheduledJob.from_spec("example", spec(**kw), env={}, **override)
    assert str(caught.value).endswith("(job example:hello)")


def test_a_failed_load_leaves_the_plan_as_it_was() -> None:
    plan, _, _ = make_plan([job("t:a")], T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="job t:j is listed twice"):
        plan.load(
            [job("t:j"), job("t:j")], last_fire=lambda key: None, paused=set(), starting=False
        )
    assert plan.job("t:a") is not None and plan.job("t:j") is None
    assert plan.next_wakeup() == T0 + timedelta(hours=1)


def test_the_public_surface() -> None:
    import plugbox.host.scheduler as scheduler

    assert sorted(scheduler.__all__) == [
        "Clock", "FakeClock", "Fire", "OffsetClock", "Plan", "ScheduledJob", "SystemClock",
        "Trigger",
    ]  # fmt: skip
    assert all(hasattr(scheduler, name) for name in scheduler.__all__)


# -- scale ---------------------------------------------------------------------------------------

MIXED = [
    ("*/5 * * * *", "UTC"),
    ("0 * * * *", "Europe/Berlin"),
    ("30 1 * * *", "America/New_York"),
    ("*/10 * * * * *", "UTC"),
    ("0 9 * * mon-fri", "Europe/Berlin"),
    ("15,45 */2 * * *", "Asia/Kolkata"),
    ("@daily", "Australia/Lord_Howe"),
    ("0 0 1 * *", "UTC"),
]


def mixed_jobs(count: int) -> list[ScheduledJob]:
    schedules = [parse_schedule(expr, zone) for expr, zone in MIXED]
    return [
        ScheduledJob(
            key=f"p{n % 97}:job{n}",
            schedule=schedules[n % len(schedules)],
            priority=n % 11,
            misfire=("skip", "run_once", "catch_up")[n % 3],
            jitter_ms=1_000 if n % 5 == 0 else 0,
            run_on_startup=n % 1_000 == 0,
        )
        for n in range(count)
    ]


def test_loading_100_000_jobs() -> None:
    jobs = mixed_jobs(100_000)
    last = T0 + timedelta(hours=1, seconds=3)
    clock = FakeClock(T0 + timedelta(hours=6, seconds=3))
    plan = Plan(clock, rng=random.Random(5))
    started = time.perf_counter()
    immediate = plan.load(jobs, last_fire=lambda key: last, paused=set(), starting=True)
    assert time.perf_counter() - started < 10  # generous; measured figures are in the report
    assert sum(f.trigger == "startup" for f in immediate) == 100
    assert all(plan.next_fire(j.key) is not None for j in jobs[:50])
    clock.set(T0 + timedelta(hours=6, seconds=11))  # jitter is up to 1 s
    assert len(plan.due()) == 12_500  # the every-10-seconds eighth
