from __future__ import annotations

from datetime import timedelta

import pytest

from plugbox.sdk import DurationError, parse_duration_ms
from plugbox.sdk.durations import format_duration_ms


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("10s", 10_000),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        ("1.5s", 1_500),
        ("2d", 172_800_000),
        (1500, 1500),
        ("1500", 1500),
        (" 10 s ", 10_000),
        (timedelta(seconds=3), 3_000),
        (0, 0),
    ],
)
def test_durations_normalise_to_milliseconds(value: object, ms: int) -> None:
    assert parse_duration_ms(value) == ms  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("10", None),
        ("ten seconds", "write a number of milliseconds"),
        ("10x", "write a number of milliseconds"),
        ("", "write a number of milliseconds"),
        (-1, "cannot be negative"),
        ("0.5ms", "whole milliseconds"),
        ("31d", "longer than 30 days"),
        (True, "number of milliseconds"),
        (None, "number of milliseconds"),
    ],
)
def test_bad_durations_say_how_to_write_them(value: object, fragment: str | None) -> None:
    if fragment is None:
        assert parse_duration_ms(value) == 10  # type: ignore[arg-type]
        return
    with pytest.raises(DurationError, match=fragment):
        parse_duration_ms(value)  # type: ignore[arg-type]


def test_format_round_trips() -> None:
    for ms in (0, 1, 999, 1_000, 90_000, 3_600_000 + 1, 86_400_000):
        assert parse_duration_ms(format_duration_ms(ms)) == ms
