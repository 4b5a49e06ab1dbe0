"""plugbox.sdk.schedules through its public API: parsing, errors, fire times, DST."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from plugbox.sdk.errors import ScheduleError
from plugbox.sdk.schedules import (
    SCHEDULE_ALIASES,
    Schedule,
    check_timezone,
    next_fire_times,
    parse_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
START = datetime(2025, 1, 1, tzinfo=UTC)  # a Wednesday


def fires(expression: str, after: datetime, n: int, tz: str = "UTC") -> list[datetime]:
    return next_fire_times(expression, after, n, tz=tz, env={})


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S%z")


def error_for(expression: str, timezone: str = "UTC", env: dict[str, str] | None = None) -> str:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression, timezone, env={} if env is None else env)
    return str(caught.value)


# --- parsing ---------------------------------------------------------------------------------


def test_five_fields_are_normalised_to_six_with_second_zero() -> None:
    schedule = parse_schedule("  */5   *  * * *  ")
    assert schedule == Schedule(
        expression="  */5   *  * * *  ",
        resolved="0 */5 * * * *",
        timezone="UTC",
        has_seconds=False,
    )


def test_six_fields_put_seconds_first() -> None:
    schedule = parse_schedule("*/10 * * * * *")
    assert schedule.has_seconds
    assert schedule.resolved == "*/10 * * * * *"
    assert [utc(f) for f in next_fire_times(schedule, START, 3)] == [
        "2025-01-01 00:00:10",
        "2025-01-01 00:00:20",
        "2025-01-01 00:00:30",
    ]


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@yearly", ["2026-01-01 00:00:00", "2027-01-01 00:00:00"]),
        ("@annually", ["2026-01-01 00:00:00", "2027-01-01 00:00:00"]),
        ("@monthly", ["2025-02-01 00:00:00", "2025-03-01 00:00:00"]),
        ("@weekly", ["2025-01-05 00:00:00", "2025-01-12 00:00:00"]),
        ("@daily", ["2025-01-02 00:00:00", "2025-01-03 00:00:00"]),
        ("@midnight", ["2025-01-02 00:00:00", "2025-01-03 00:00:00"]),
        ("@hourly", ["2025-01-01 01:00:00", "2025-01-01 02:00:00"]),
    ],
)
def test_aliases(alias: str, expected: list[str]) -> None:
    assert [utc(f) for f in fires(alias, START, 2)] == expected
    schedule = parse_schedule(alias.upper())
    assert schedule.resolved == "0 " + SCHEDULE_ALIASES[alias]
    assert not schedule.has_seconds


def test_alias_table_is_the_standard_one_and_read_only() -> None:
    assert set(SCHEDULE_ALIASES) == {
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    }
    with pytest.raises(TypeError):
        SCHEDULE_ALIASES["@often"] = "* * * * *"  # type: ignore[index]


def test_names_ranges_lists_and_sunday_as_seven() -> None:
    weekdays = fires("0 9 * JAN-mar Mon-FRI", START, 3)
    assert [f.strftime("%a %d %H") for f in weekdays] == ["Wed 01 09", "Thu 02 09", "Fri 03 09"]
    assert (
        fires("0 0 * * 7", START, 1) == fires("0 0 * * 0", START, 1) == fires("@weekly", START, 1)
    )
    assert [f.day for f in fires("0 0 1,15 * *", START, 3)] == [15, 1, 15]
    assert [f.minute for f in fires("10-20/5 * * * *", START, 4)] == [10, 15, 20, 10]
    assert [f.minute for f in fires("50/5 * * * *", START, 3)] == [50, 55, 50]


def test_last_day_last_weekday_and_nth_weekday() -> None:
    assert [f.date().isoformat() for f in fires("0 0 L * *", START, 3)] == [
        "2025-01-31",
        "2025-02-28",
        "2025-03-31",
    ]
    assert [f.date().isoformat() for f in fires("0 0 * * 5L", START, 2)] == [
        "2025-01-31",
        "2025-02-28",
    ]
    assert [f.date().isoformat() for f in fires("0 0 * * mon#2", START, 2)] == [
        "2025-01-13",
        "2025-02-10",
    ]
    assert [f.date().isoformat() for f in fires("0 0 29 2 *", START, 1)] == ["2028-02-29"]


def test_day_of_month_and_day_of_week_follow_vixie_or_and_rule() -> None:
    # Both restricted: either matches (the 1st, the 15th and every Sunday).
    either = [f.day for f in fires("0 0 1,15 * sun", START, 4)]
    assert either == [5, 12, 15, 19]
    # One starts with '*': both must match (odd days that are Sundays).
    both = [f.date().isoformat() for f in fires("0 0 */2 * sun", START, 2)]
    assert both == ["2025-01-05", "2025-01-19"]


def test_question_mark_means_any_day() -> None:
    assert fires("0 0 ? * mon", START, 2) == fires("0 0 * * mon", START, 2)


def test_env_substitution() -> None:
    env = {"MINUTE": "15", "SCHED": "@hourly"}
    schedule = parse_schedule("${MINUTE} * * * *", env=env)
    assert schedule.expression == "${MINUTE} * * * *"
    assert schedule.resolved == "0 15 * * * *"
    assert parse_schedule("${SCHED}", env=env).resolved == "0 0 * * * *"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGBOX_TEST_HOUR", "7")
    assert parse_schedule("0 ${PLUGBOX_TEST_HOUR} * * *").resolved == "0 0 7 * * *"


# --- errors ----------------------------------------------------------------------------------


def test_range_errors_have_the_documented_form() -> None:
    assert error_for("61 * * * *") == "'61 * * * *': minute 61 is outside 0-59"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("60 * * * * *", "second 60 is outside 0-59"),
        ("0 60 * * * *", "minute 60 is outside 0-59"),
        ("* 24 * * *", "hour 24 is outside 0-23"),
        ("* * 0 * *", "day-of-month 0 is outside 1-31"),
        ("* * 32 * *", "day-of-month 32 is outside 1-31"),
        ("* * * 0 *", "month 0 is outside 1-12"),
        ("* * * 13 *", "month 13 is outside 1-12"),
        ("* * * * 8", "day-of-week 8 is outside 0-7"),
        ("* 1-30 * * *", "hour 30 is outside 0-23"),
        ("* * * * 1#2,9", "day-of-week 9 is outside 0-7"),
    ],
)
def test_out_of_range_values_name_the_field(expression: str, message: str) -> None:
    assert error_for(expression) == f"{expression!r}: {message}"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty schedule"),
        ("*", "1 field; a schedule has 5 fields"),
        ("* * * *", "4 fields; a schedule has 5 fields"),
        ("0 0 0 1 1 * 2025", "7 fields: a year field is not supported"),
        ("* * * * * * * *", "8 fields; a schedule has 5 fields"),
        ("x * * * *", "minute 'x' is not a number"),
        ("* * * foo *", "month 'foo' is not a number or a name such as jan"),
        ("* * * * funday", "day-of-week 'funday' is not a number or a name such as mon"),
        ("5-1 * * * *", "minute range '5-1' runs backwards; cron ranges do not wrap around"),
        ("*/0 * * * *", "minute step '0' in '*/0' must be a whole number above 0"),
        ("*/90 * * * *", "minute step 90 in '*/90' selects only 0: steps restart every hour"),
        ("* */24 * * *", "hour step 24 in '*/24' selects only 0"),
        ("1,,2 * * * *", "minute '1,,2' has an empty item in its list"),
        ("-5 * * * *", "minute is missing a number"),
        ("* * 15W * *", "'W' (nearest weekday) is not supported"),
        ("H * * * *", "hashed/random values (H, R) are not supported"),
        ("* * * * 1#6", "the number after '#' must be 1-5"),
        ("* * * * L", "day-of-week 'L' alone is ambiguous"),
        ("@often", "unknown alias '@often'; the aliases are @yearly, @annually"),
        ("@reboot", "@reboot is not a schedule"),
    ],
)
def test_malformed_expressions(expression: str, message: str) -> None:
    assert message in error_for(expression)


@pytest.mark.parametrize(
    "expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 0 30,31 feb *"]
)
def test_expressions_that_never_fire_are_rejected(expression: str) -> None:
    assert "never fires: day-of-month" in error_for(expression)


def test_never_fires_with_both_day_fields() -> None:
    # '*/10' starts with '*', so both day fields must match: 1, 11, 21 or 31 of February
    # that is also its 5th Saturday (only ever the 29th).
    assert "never fires: no date has day-of-month '*/10' and day-of-week 'sat#5'" in error_for(
        "0 0 */10 2 sat#5"
    )


def test_six_fields_written_seconds_last_are_caught() -> None:
    message = error_for("0 12 * * MON 30")
    assert "6 fields are read with seconds FIRST" in message
    assert "month 'MON' is not a number" in message
    assert "seconds LAST (croniter's default)" in message
    assert message.endswith("write '30 0 12 * * MON'")
    assert error_for("*/5 * * * * 30").endswith("write '30 */5 * * * *'")


def test_six_fields_wrong_both_ways_report_the_seconds_first_reading() -> None:
    assert error_for("0 0 25 * * 99") == "'0 0 25 * * 99': hour 25 is outside 0-23"


def test_unset_environment_variable_is_named() -> None:
    assert error_for("${NOPE} * * * *") == (
        "'${NOPE} * * * *': environment variable NOPE is not set (used as ${NOPE})"
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("$MINUTE * * * *", "a '$' must start ${NAME} (write $$ for a literal '$')"),
        ("${MINUTE * * * *", "unterminated '${MINUTE * * * *'"),
        ("${1X} * * * *", "'${1X}' is not a variable reference"),
    ],
)
def test_malformed_substitutions(expression: str, message: str) -> None:
    assert message in error_for(expression, env={"MINUTE": "5"})


def test_bad_substitution_reports_written_and_substituted_text() -> None:
    message = error_for("${MINUTE} * * * *", env={"MINUTE": "75"})
    assert message == (
        "'${MINUTE} * * * *': minute 75 is outside 0-59"
        " (after ${...} substitution the schedule reads '75 * * * *')"
    )
    assert "reads '$ * * * *'" in error_for("$$ * * * *")


def test_schedule_error_is_a_value_error_with_its_parts() -> None:
    with pytest.raises(ValueError, match="hour 25") as caught:
        parse_schedule("0 25 * * *")
    assert isinstance(caught.value, ScheduleError)
    assert caught.value.expression == "0 25 * * *"
    assert caught.value.reason == "hour 25 is outside 0-23"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Berlin", "did you mean 'Europe/Berlin'?"),
        ("europe/berlin", "did you mean 'Europe/Berlin'?"),
        ("Mars/Olympus_Mons", "use the Area/City form, such as 'Europe/Berlin'"),
        ("../etc/passwd", "not an IANA time zone name"),
        ("/etc/localtime", "not an IANA time zone name"),
        ("Europe", "not an IANA time zone name"),
        ("", "a time zone must be an IANA name such as 'Europe/Berlin'"),
    ],
)
def test_unknown_time_zones(name: str, hint: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(hint)) as caught:
        check_timezone(name)
    assert str(caught.value).startswith(repr(name))
    assert hint in error_for("* * * * *", timezone=name)


def test_known_time_zone() -> None:
    assert check_timezone("Europe/Berlin") is BERLIN


def test_naive_datetime_is_refused() -> None:
    schedule = parse_schedule("* * * * *")
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError, match="after must be timezone-aware, got the naive datetime"):
        schedule.next_after(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.iter_after(naive)  # checked at the call, not at the first next()
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times("* * * * *", naive)


def test_next_fire_times_argument_errors() -> None:
    schedule = parse_schedule("* * * * *")
    with pytest.raises(ValueError, match="n must be 0 or more"):
        next_fire_times(schedule, START, -1)
    with pytest.raises(ValueError, match="env applies only to a schedule expression"):
        next_fire_times(schedule, START, env={})
    assert next_fire_times(schedule, START, 0) == []


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ScheduleError, match="must have 6 fields"):
        Schedule(expression="* * * * *", resolved="* * * * *", timezone="UTC", has_seconds=False)
    with pytest.raises(ScheduleError, match="minute 99 is outside 0-59"):
        Schedule(expression="x", resolved="0 99 * * * *", timezone="UTC", has_seconds=False)


# --- fire times ------------------------------------------------------------------------------


def test_next_after_is_strictly_after() -> None:
    schedule = parse_schedule("*/15 * * * *")
    on_a_fire = datetime(2025, 1, 1, 0, 15, tzinfo=UTC)
    assert utc(schedule.next_after(on_a_fire)) == "2025-01-01 00:30:00"
    assert utc(schedule.next_after(on_a_fire - timedelta(microseconds=1))) == "2025-01-01 00:15:00"
    assert utc(schedule.next_after(on_a_fire + timedelta(microseconds=1))) == "2025-01-01 00:30:00"


def test_results_are_aware_in_the_schedule_zone_whatever_zone_after_is_in() -> None:
    schedule = parse_schedule("0 9 * * *", "Europe/Berlin")
    fire = schedule.next_after(datetime(2025, 1, 1, 12, tzinfo=UTC))
    assert fire.tzinfo is BERLIN
    assert local(fire) == "2025-01-02 09:00:00+0100"
    assert schedule.next_after(datetime(2025, 1, 1, 7, tzinfo=UTC)) == datetime(
        2025, 1, 1, 9, tzinfo=BERLIN
    )


def test_next_fire_times_takes_a_schedule_and_can_move_it_to_another_zone() -> None:
    schedule = parse_schedule("0 9 * * *", "Europe/Berlin")
    assert [local(f) for f in next_fire_times(schedule, START, 2)] == [
        "2025-01-01 09:00:00+0100",
        "2025-01-02 09:00:00+0100",
    ]
    in_new_york = next_fire_times(schedule, START, 1, tz="America/New_York")
    assert local(in_new_york[0]) == "2025-01-01 09:00:00-0500"


def test_iter_after_is_a_lazy_increasing_stream() -> None:
    stream = parse_schedule("*/7 * * * * *").iter_after(START)
    taken = [next(stream) for _ in range(1000)]
    assert all(a < b for a, b in pairwise(taken))
    assert {f.second for f in taken} == {0, 7, 14, 21, 28, 35, 42, 49, 56}


def test_schedules_are_values() -> None:
    first = parse_schedule("0 9 * * *", "Europe/Berlin")
    second = parse_schedule("0 9 * * *", "Europe/Berlin")
    assert first == second
    assert hash(first) == hash(second)
    assert "CronSpec" not in repr(first)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.timezone = "UTC"  # type: ignore[misc]
    moved = dataclasses.replace(first, timezone="Asia/Tokyo")
    assert moved.next_after(START).tzinfo is ZoneInfo("Asia/Tokyo")


def test_interval_job_whose_hours_only_exist_in_a_dst_gap_never_fires() -> None:
    # 02:xx on the last Sunday of March never exists in Europe/Berlin.
    schedule = parse_schedule("*/30 2 * 3 0L", "Europe/Berlin")
    assert list(schedule.iter_after(START)) == []
    with pytest.raises(ScheduleError, match="does not fire after 2025-01-01T00:00:00"):
        schedule.next_after(START)


def test_end_of_time_ends_the_stream() -> None:
    schedule = parse_schedule("@yearly")
    assert list(schedule.iter_after(datetime(9999, 6, 1, tzinfo=UTC))) == []


# --- daylight saving time --------------------------------------------------------------------


def test_fixed_time_in_spring_forward_gap_fires_once_at_end_of_gap() -> None:
    got = fires("30 2 * * *", datetime(2025, 3, 29, tzinfo=BERLIN), 3, tz="Europe/Berlin")
    assert [local(f) for f in got] == [
        "2025-03-29 02:30:00+0100",
        "2025-03-30 03:00:00+0200",  # 02:30 does not exist: the first instant after the gap
        "2025-03-31 02:30:00+0200",
    ]
    assert utc(got[1]) == "2025-03-30 01:00:00"


def test_fixed_time_with_seconds_in_gap_fires_at_end_of_gap() -> None:
    got = fires("15 30 2 * * *", datetime(2025, 3, 30, tzinfo=BERLIN), 1, tz="Europe/Berlin")
    assert [local(f) for f in got] == ["2025-03-30 03:00:00+0200"]


def test_fixed_time_in_fall_back_overlap_fires_once_at_first_occurrence() -> None:
    # croniter fires this twice on 2025-11-02 (05:30 and 06:30 UTC).
    got = fires("30 1 * * *", datetime(2025, 11, 1, 12, tzinfo=NEW_YORK), 3, tz="America/New_York")
    assert [local(f) for f in got] == [
        "2025-11-02 01:30:00-0400",
        "2025-11-03 01:30:00-0500",
        "2025-11-04 01:30:00-0500",
    ]
    assert utc(got[0]) == "2025-11-02 05:30:00"
    assert got[0].fold == 0


def test_fixed_time_asked_during_the_second_pass_waits_for_the_next_day() -> None:
    second_pass = datetime(2025, 11, 2, 1, 10, tzinfo=NEW_YORK, fold=1)  # 06:10 UTC
    assert second_pass.utcoffset() == timedelta(hours=-5)
    got = fires("30 1 * * *", second_pass, 1, tz="America/New_York")
    assert [local(f) for f in got] == ["2025-11-03 01:30:00-0500"]


def test_six_field_fixed_time_follows_the_same_rule() -> None:
    got = fires("0 30 1 * * *", datetime(2025, 11, 2, tzinfo=NEW_YORK), 2, tz="America/New_York")
    assert [utc(f) for f in got] == ["2025-11-02 05:30:00", "2025-11-03 06:30:00"]


def test_interval_job_fires_in_both_passes_of_the_overlap() -> None:
    got = fires(
        "*/15 * * * *", datetime(2025, 11, 2, 0, 50, tzinfo=NEW_YORK), 10, "America/New_York"
    )
    assert [local(f) for f in got] == [
        "2025-11-02 01:00:00-0400",
        "2025-11-02 01:15:00-0400",
        "2025-11-02 01:30:00-0400",
        "2025-11-02 01:45:00-0400",
        "2025-11-02 01:00:00-0500",
        "2025-11-02 01:15:00-0500",
        "2025-11-02 01:30:00-0500",
        "2025-11-02 01:45:00-0500",
        "2025-11-02 02:00:00-0500",
        "2025-11-02 02:15:00-0500",
    ]
    assert [f.fold for f in got] == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(got)}
    assert gaps == {timedelta(minutes=15)}


def test_hourly_and_multi_hour_jobs_are_interval_jobs() -> None:
    for expression in ("0 * * * *", "0 1,2 * * *", "0 1-2 * * *"):
        got = fires(expression, datetime(2025, 11, 2, tzinfo=NEW_YORK), 3, "America/New_York")
        assert [local(f) for f in got] == [
            "2025-11-02 01:00:00-0400",
            "2025-11-02 01:00:00-0500",
            "2025-11-02 02:00:00-0500",
        ], expression


def test_interval_job_skips_the_gap_without_catching_up() -> None:
    got = fires("*/15 * * * *", datetime(2025, 3, 30, 1, 40, tzinfo=BERLIN), 3, "Europe/Berlin")
    assert [local(f) for f in got] == [
        "2025-03-30 01:45:00+0100",
        "2025-03-30 03:00:00+0200",
        "2025-03-30 03:15:00+0200",
    ]
    hourly = fires("0 * * * *", datetime(2025, 3, 30, 0, 30, tzinfo=BERLIN), 3, "Europe/Berlin")
    assert [local(f) for f in hourly] == [
        "2025-03-30 01:00:00+0100",
        "2025-03-30 03:00:00+0200",
        "2025-03-30 04:00:00+0200",
    ]


def test_every_second_across_the_overlap_is_continuous() -> None:
    just_before = datetime(2025, 11, 2, 1, 59, 58, tzinfo=NEW_YORK)
    got = fires("* * * * * *", just_before, 3, "America/New_York")
    assert [local(f) for f in got] == [
        "2025-11-02 01:59:59-0400",
        "2025-11-02 01:00:00-0500",
        "2025-11-02 01:00:01-0500",
    ]


def test_lord_howe_half_hour_dst() -> None:
    fall = datetime(2025, 4, 6, 1, 20, tzinfo=LORD_HOWE)
    interval = fires("*/15 * * * *", fall, 6, "Australia/Lord_Howe")
    assert [local(f) for f in interval] == [
        "2025-04-06 01:30:00+1100",
        "2025-04-06 01:45:00+1100",
        "2025-04-06 01:30:00+1030",
        "2025-04-06 01:45:00+1030",
        "2025-04-06 02:00:00+1030",
        "2025-04-06 02:15:00+1030",
    ]
    fixed = fires("45 1 * * *", fall, 2, "Australia/Lord_Howe")
    assert [local(f) for f in fixed] == ["2025-04-06 01:45:00+1100", "2025-04-07 01:45:00+1030"]
    spring = fires("15 2 * * *", datetime(2025, 10, 5, tzinfo=LORD_HOWE), 2, "Australia/Lord_Howe")
    assert [local(f) for f in spring] == ["2025-10-05 02:30:00+1100", "2025-10-06 02:15:00+1100"]


def test_returned_times_exist_and_carry_the_right_fold() -> None:
    for expression in ("*/20 * * * *", "30 1 * * *", "30 2 * * *", "0 0-3 * * *"):
        for tz, day in (("America/New_York", 2), ("Europe/Berlin", 26)):
            start = datetime(2025, 10 if day == 26 else 11, day, tzinfo=ZoneInfo(tz))
            for fire in fires(expression, start, 20, tz):
                round_trip = fire.astimezone(UTC).astimezone(ZoneInfo(tz))
                assert (round_trip.replace(tzinfo=None), round_trip.fold) == (
                    fire.replace(tzinfo=None),
                    fire.fold,
                ), (expression, tz, fire)


def test_fixed_or_interval_is_decided_by_values_not_syntax() -> None:
    gap_day = datetime(2025, 3, 30, tzinfo=BERLIN)
    # One value each, however written: fixed-time, so the gap moves it to 03:00.
    assert [local(f) for f in fires("0-0 2 * * *", gap_day, 1, "Europe/Berlin")] == [
        "2025-03-30 03:00:00+0200"
    ]
    # Two values: an interval job, so both gap times are skipped.
    assert [local(f) for f in fires("0,30 2 * * *", gap_day, 1, "Europe/Berlin")] == [
        "2025-03-31 02:00:00+0200"
    ]
