"""The SDK's schedule preview agrees with what the host's Plan really fires.

Each scenario is played twice: by ``preview_schedule`` and by a host loop written here the way
daemon.py drives the Plan -- a fake clock moved from wakeup to wakeup, the stored last fire
written for each scheduled fire that runs, and for each downtime a new Plan (a new process)
loaded at ``up_at`` with ``starting=True``. The two must list the same runs at the same times.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plugbox.host.scheduler import FakeClock, Fire, Plan, ScheduledJob
from plugbox.sdk import JobSpec
from plugbox.sdk.schedule_preview import SchedulePreview, preview_schedule
from plugbox.sdk.schedules import next_fire_times

_MICROSECOND = timedelta(microseconds=1)
# The preview assumes the host ran the job before `start`, so its stored last fire is the job's
# latest instant before `start`: eight days reach back past a weekend for a weekday job.
_LEAD_IN = timedelta(days=8)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Ran:
    scheduled_at: datetime
    runs_at: datetime
    trigger: str


def host_runs(
    spec: JobSpec, start: datetime, end: datetime, downtime: list[tuple[datetime, datetime]]
) -> list[Ran]:
    """What a host running ``spec`` from before ``start`` starts in ``[start, end)``."""
    job = ScheduledJob.from_spec("t", spec, env={})
    store: dict[str, datetime] = {}
    ran: list[Ran] = []
    clock = FakeClock(start - _LEAD_IN)

    def boot() -> Plan:
        plan = Plan(clock, rng=random.Random(0))
        dispatch(plan.load([job], last_fire=store.get, paused=set(), starting=True))
        return plan

    def dispatch(fires: list[Fire]) -> None:
        for fire in fires:
            ran.append(Ran(fire.scheduled_at, clock.now(), fire.trigger))
            if fire.trigger == "schedule":  # as Daemon._run records it
                store[fire.job] = fire.scheduled_at

    def run_until(plan: Plan, until: datetime) -> None:
        while (wakeup := plan.next_wakeup()) is not None and wakeup <= until:
            clock.set(max(wakeup, clock.now()))
            dispatch(plan.due())

    plan = boot()
    for down_from, up_at in downtime:
        run_until(plan, down_from - _MICROSECOND)  # nothing fires at down_from itself
        clock.set(up_at)
        plan = boot()
    run_until(plan, end - _MICROSECOND)
    return [r for r in ran if start <= r.scheduled_at < end]


def preview_runs(preview: SchedulePreview) -> list[Ran]:
    trigger = {"fired": "schedule", "late": "schedule", "startup": "startup"}
    return [
        Ran(fire.scheduled_at, fire.runs_at, trigger[fire.status])
        for fire in preview.fires
        if fire.runs_at is not None
    ]


def _by_time(ran: Ran) -> tuple[datetime, datetime, str]:
    return ran.runs_at, ran.scheduled_at, ran.trigger


def check(spec: JobSpec, start: datetime, end: datetime, downtime: list[Any]) -> SchedulePreview:
    preview = preview_schedule(spec, start=start, end=end, downtime=downtime)
    expected = host_runs(spec, start, end, downtime)
    # The preview lists rows by nominal time; at a restart the host starts a startup run before
    # the late ones, all at the same instant. Compare the runs, in one order.
    assert sorted(preview_runs(preview), key=_by_time) == sorted(expected, key=_by_time)
    # Every nominal fire is listed exactly once; those the host never started are "missed".
    assert spec.schedule is not None
    nominal = [
        f.astimezone(UTC)
        for f in next_fire_times(spec.schedule, start - _MICROSECOND, 2_000, spec.timezone)
        if f < end
    ]
    listed = [f.scheduled_at for f in preview.fires if f.status != "startup"]
    assert listed == nominal
    started = {r.scheduled_at for r in expected if r.trigger == "schedule"}
    missed = [f.scheduled_at for f in preview.fires if f.status == "missed"]
    assert missed == [instant for instant in nominal if instant not in started]
    for fire in preview.fires:
        if fire.status == "fired":
            assert fire.runs_at == fire.scheduled_at
        if fire.status == "late":
            assert fire.runs_at is not None and fire.runs_at > fire.scheduled_at
    return preview


def spec(schedule: str, zone: str = "UTC", **kw: Any) -> JobSpec:
    return JobSpec(id="j", handler="pkg.mod:j", schedule=schedule, timezone=zone, **kw)


MISFIRES = [
    {"misfire": "skip"},
    {"misfire": "run_once"},
    {"misfire": "catch_up"},  # the default catch_up_limit, 10
    {"misfire": "catch_up", "catch_up_limit": 3},
    {"misfire": "run_once", "run_on_startup": True},
]
T0 = utc(2025, 1, 6)


@pytest.mark.parametrize("policy", MISFIRES, ids=lambda kw: "-".join(map(str, kw.values())))
@pytest.mark.parametrize("schedule", ["0 * * * *", "*/20 * * * *", "30 2 * * *", "0 9 * * mon-fri"])
def test_downtime_with_each_misfire_policy(schedule: str, policy: dict[str, Any]) -> None:
    downtime = [
        (T0 + timedelta(hours=1), T0 + timedelta(days=3, hours=1)),  # down and up on the hour
        (utc(2025, 1, 10, 8, 10), utc(2025, 1, 10, 9, 40)),
    ]
    preview = check(spec(schedule, **policy), T0, T0 + timedelta(days=7), downtime)
    statuses = {fire.status for fire in preview.fires}
    assert ("late" in statuses) == (policy["misfire"] != "skip")
    if policy["misfire"] != "catch_up":  # catch_up may keep every fire of a daily job
        assert "missed" in statuses


def test_a_downtime_at_the_very_start() -> None:
    hourly = spec("0 * * * *", misfire="catch_up", catch_up_limit=2)
    check(hourly, T0, T0 + timedelta(days=1), [(T0, T0 + timedelta(hours=5, minutes=30))])


DST_WEEKS = {
    "Europe/Berlin spring": ("Europe/Berlin", utc(2025, 3, 27), utc(2025, 3, 30)),
    "Europe/Berlin autumn": ("Europe/Berlin", utc(2025, 10, 23), utc(2025, 10, 26)),
    "America/New_York spring": ("America/New_York", utc(2025, 3, 6), utc(2025, 3, 9)),
    "America/New_York autumn": ("America/New_York", utc(2025, 10, 30), utc(2025, 11, 2)),
}


@pytest.mark.parametrize("case", DST_WEEKS.values(), ids=DST_WEEKS.keys())
@pytest.mark.parametrize("schedule", ["30 2 * * *", "30 1 * * *", "*/30 1,2 * * *", "0 * * * *"])
@pytest.mark.parametrize("misfire", ["skip", "run_once", "catch_up"])
def test_dst_week(case: tuple[str, datetime, datetime], schedule: str, misfire: str) -> None:
    zone, start, change_day = case
    job = spec(schedule, zone, misfire=misfire, catch_up_limit=3)
    check(job, start, start + timedelta(days=7), [])
    # The host is down across the night the clocks change, and again briefly the day after.
    downtime = [
        (change_day - timedelta(hours=2), change_day + timedelta(hours=9)),
        (change_day + timedelta(days=1, hours=5), change_day + timedelta(days=1, hours=8)),
    ]
    check(job, start, start + timedelta(days=7), downtime)
