"""How the page words times, durations and rates (pure functions, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plugbox.host.web.present import ago, duration, exact, percent, tone

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=-12), "12 s ago"),
        (timedelta(minutes=-3, seconds=-59), "3 min ago"),
        (timedelta(hours=-2), "2 h ago"),
        (timedelta(hours=5, minutes=20), "in 5 h 20 min"),
        (timedelta(days=-3, hours=-4), "3 d ago"),
        (timedelta(seconds=30), "in 30 s"),
    ],
)
def test_times_read_relative_to_now(offset: timedelta, words: str) -> None:
    assert ago(NOW + offset, NOW) == words


def test_the_exact_time_is_utc_to_the_second_whatever_zone_it_came_in() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 12, 7, 19, 30, 5, 999, tzinfo=ZoneInfo("Europe/Paris"))
    assert exact(local) == "2026-12-07 18:30:05 UTC"
    assert exact(None) == ""
    assert ago(None) == "—"


@pytest.mark.parametrize(
    ("ms", "words"),
    [(None, "—"), (0, "0 ms"), (999, "999 ms"), (1_500, "1.5 s"), (125_000, "2 min")],
)
def test_durations(ms: int | None, words: str) -> None:
    assert duration(ms) == words


def test_rates_and_tones() -> None:
    assert percent(None) == "—"
    assert percent(0.987) == "99 %"
    assert tone("success") == "good"
    assert tone("timeout") == "bad"
    assert tone("paused") == "warn"
    assert tone("running") == "busy"
    assert tone("something new") == "quiet"
