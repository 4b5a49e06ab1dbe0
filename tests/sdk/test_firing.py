"""The scheduler's small pure decisions (plugbox.sdk.firing): concurrency, missed fires, backoff."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from plugbox.sdk.firing import backoff_ms, concurrency_decision, latest_fires, missed_fires
from plugbox.sdk.schedules import parse_schedule

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOURLY = parse_schedule("0 * * * *")


def hours(*offsets: float) -> list[datetime]:
    return [T0 + timedelta(hours=h) for h in offsets]


# -- concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "active", "decision"),
    [
        ("forbid", 0, "start"),
        ("forbid", 1, "skip"),
        ("forbid", 3, "skip"),
        ("allow", 0, "start"),
        ("allow", 2, "start"),
        ("replace", 0, "start"),
        ("replace", 1, "replace"),
    ],
)
def test_concurrency_decision(policy: str, active: int, decision: str) -> None:
    assert concurrency_decision(policy, active) == decision  # type: ignore[arg-type]


def test_concurrency_decision_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown concurrency policy 'queue'"):
        concurrency_decision("queue", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="active_runs must be 0 or more"):
        concurrency_decision("allow", -1)


# -- missed fires -----------------------------------------------------------------------------


def test_three_days_down_with_each_policy() -> None:
    last, now = T0, T0 + timedelta(days=3, seconds=30)
    assert missed_fires(HOURLY, last, now, "skip", 10) == []
    assert missed_fires(HOURLY, last, now, "run_once", 10) == hours(72)
    assert missed_fires(HOURLY, last, now, "catch_up", 3) == hours(70, 71, 72)
    assert missed_fires(HOURLY, last, now, "catch_up", 1_000) == hours(*range(1, 73))


def test_missed_means_strictly_between_last_fire_and_now() -> None:
    # The fire at `last` already ran; one due exactly now is due, not missed.
    assert missed_fires(HOURLY, T0, T0 + timedelta(hours=2), "catch_up", 10) == hours(1)
    assert missed_fires(HOURLY, T0, T0 + timedelta(minutes=59), "catch_up", 10) == []
    assert missed_fires(HOURLY, None, T0 + timedelta(days=3), "catch_up", 10) == []
    # The clock went backwards past the last fire: nothing was missed.
    assert missed_fires(HOURLY, T0, T0 - timedelta(days=1), "run_once", 10) == []


def test_missed_fires_in_local_zone_are_returned_as_utc() -> None:
    daily = parse_schedule("30 1 * * *", "America/New_York")
    last = datetime(2025, 10, 31, 5, 30, tzinfo=UTC)
    now = datetime(2025, 11, 4, 12, 0, tzinfo=UTC)
    got = missed_fires(daily, last, now, "catch_up", 10)
    # 01:30 EDT on Nov 1 and 2 (first pass of the overlap only), then 01:30 EST.
    assert got == [
        datetime(2025, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2025, 11, 2, 5, 30, tzinfo=UTC),
        datetime(2025, 11, 3, 6, 30, tzinfo=UTC),
        datetime(2025, 11, 4, 6, 30, tzinfo=UTC),
    ]
    assert all(fire.tzinfo is UTC for fire in got)


def test_unknown_misfire_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown misfire policy 'all'"):
        missed_fires(HOURLY, T0, T0, "all", 1)  # type: ignore[arg-type]


def test_latest_fires_cost_does_not_grow_with_the_outage() -> None:
    # 3 days of an every-second job is 259,200 instants; walking them all would take ~1 s.
    every_second = parse_schedule("* * * * * *")
    now = T0 + timedelta(days=3)
    started = time.perf_counter()
    got = latest_fires(every_second, T0, now, 5)
    elapsed = time.perf_counter() - started
    assert got == [now - timedelta(seconds=s) for s in (4, 3, 2, 1, 0)]
    assert elapsed < 0.5  # a guard against walking every instant (~1 s+), not a speed claim
    with pytest.raises(ValueError, match="n must be 1 or more"):
        latest_fires(every_second, T0, now, 0)


def test_latest_fires_of_a_rare_schedule_far_back() -> None:
    yearly = parse_schedule("@yearly", "Europe/Berlin")
    got = latest_fires(yearly, datetime(2019, 6, 1, tzinfo=UTC), T0 + timedelta(days=1), 2)
    assert got == [
        datetime(2023, 12, 31, 23, 0, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 0, tzinfo=UTC),
    ]


# -- backoff ----------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_ms(attempt, 1_000, 10_000, None) for attempt in range(1, 8)]
    assert delays == [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
    assert backoff_ms(500, 1_000, 60_000, None) == 60_000  # no overflow for absurd attempts
    assert backoff_ms(1, 5_000, 2_000, None) == 2_000  # a base above the cap is capped


def test_backoff_jitter_stays_within_ten_percent_and_under_the_cap() -> None:
    rng = random.Random(7)
    for attempt, nominal in [(1, 1_000), (2, 2_000), (3, 4_000)]:
        for _ in range(200):
            assert 0.9 * nominal <= backoff_ms(attempt, 1_000, 60_000, rng) <= 1.1 * nominal
    capped = [backoff_ms(10, 1_000, 8_000, rng) for _ in range(200)]
    assert all(7_200 <= delay <= 8_000 for delay in capped)
    assert len(set(capped)) > 50  # it does vary


def test_backoff_is_deterministic_with_a_seeded_rng() -> None:
    first = [backoff_ms(a, 1_000, 60_000, random.Random(42)) for a in range(1, 6)]
    again = [backoff_ms(a, 1_000, 60_000, random.Random(42)) for a in range(1, 6)]
    assert first == again


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "message"),
    [(0, 1_000, 1_000, "attempt counts from 1"), (1, 0, 1_000, "1 ms or more")],
)
def test_backoff_refuses_nonsense(attempt: int, base: int, cap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backoff_ms(attempt, base, cap, None)
