"""preview_schedule: what the host does with a job's fires over DST days and downtimes."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plugbox.sdk import JobContext, JobSpec, ManifestError, ScheduleError, get_job, job
from plugbox.sdk import schedule_preview as module
from plugbox.sdk.schedule_preview import PreviewFire, SchedulePreview, preview_schedule

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


def hours(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(hours=h) for h in offsets]


def with_status(preview: SchedulePreview, status: str) -> list[datetime]:
    return [fire.scheduled_at for fire in preview.fires if fire.status == status]


@job("nightly", schedule="30 2 * * *", timezone="Europe/Berlin", misfire="catch_up", jitter="30s")
def nightly(ctx: JobContext) -> None:
    """A fixed-time job in a zone with DST."""


# -- DST: a fixed-time job fires once per wall-clock day ------------------------------------------


def test_spring_forward_day_fires_once_at_the_end_of_the_gap() -> None:
    preview = preview_schedule(
        "30 2 * * *", timezone="Europe/Berlin", start=utc(3, 28), end=utc(4, 1)
    )
    assert [f.scheduled_at for f in preview.fires] == [
        utc(3, 28, 1, 30),
        utc(3, 29, 1, 30),
        utc(3, 30, 1, 0),  # 02:30 does not exist: 03:00 CEST, the first instant after the gap
        utc(3, 31, 0, 30),
    ]
    assert [f.local.date().day for f in preview.fires] == [28, 29, 30, 31]  # one per local day
    moved = preview.fires[2]
    assert moved.local == datetime(2025, 3, 30, 3, 0, tzinfo=BERLIN)
    assert moved.local.tzname() == "CEST"
    assert "clocks spring forward 1 h" in moved.note and "end of the gap" in moved.note
    assert all(f.status == "fired" and f.runs_at == f.scheduled_at for f in preview.fires)
    assert [f.note for f in preview.fires if f is not moved] == ["", "", ""]


def test_fall_back_day_fires_once_at_the_first_pass() -> None:
    preview = preview_schedule(
        "30 1 * * *", timezone="America/New_York", start=utc(11, 1), end=utc(11, 4)
    )
    assert [f.scheduled_at for f in preview.fires] == [
        utc(11, 1, 5, 30),
        utc(11, 2, 5, 30),  # 01:30 EDT; not again at 01:30 EST (06:30 UTC)
        utc(11, 3, 6, 30),
    ]
    assert [f.local.tzname() for f in preview.fires] == ["EDT", "EDT", "EST"]
    assert preview.fires[1].note == (
        "clocks fall back: 01:30 happens twice today; a fixed-time job fires only in the first pass"
    )


def test_an_interval_job_fires_in_both_passes_of_the_repeated_hour() -> None:
    preview = preview_schedule(
        "*/30 1 * * *", timezone="America/New_York", start=utc(11, 2), end=utc(11, 3)
    )
    assert [f.scheduled_at for f in preview.fires] == [
        utc(11, 2, 5, 0),
        utc(11, 2, 5, 30),
        utc(11, 2, 6, 0),
        utc(11, 2, 6, 30),
    ]
    assert [(f.local.hour, f.local.minute, f.local.fold) for f in preview.fires] == [
        (1, 0, 0),
        (1, 30, 0),
        (1, 0, 1),
        (1, 30, 1),
    ]
    assert "first pass of 01:00; it fires again" in preview.fires[0].note
    assert "second pass of 01:30" in preview.fires[3].note


def test_an_interval_job_skips_wall_times_inside_the_gap() -> None:
    preview = preview_schedule(
        "*/30 2 * * *", timezone="Europe/Berlin", start=utc(3, 29), end=utc(4, 1)
    )
    assert [f.scheduled_at for f in preview.fires] == [
        utc(3, 29, 1, 0),
        utc(3, 29, 1, 30),
        # 2025-03-30: 02:00-02:59 does not exist, and nothing is caught up
        utc(3, 31, 0, 0),
        utc(3, 31, 0, 30),
    ]


# -- downtime and misfire -----------------------------------------------------------------------

# Hourly; the host is down from 01:30 on day 1 to 01:30 on day 4: the fires at hours 2..73 fall
# in the downtime, and the host comes back half an hour after the last of them.
DOWN = [(T0 + timedelta(hours=1, minutes=30), T0 + timedelta(days=3, hours=1, minutes=30))]
RESTART = DOWN[0][1]
ON_TIME = hours(0, 1, *range(74, 96))


@pytest.mark.parametrize(
    ("misfire", "limit", "late"),
    [
        ("skip", None, []),
        ("run_once", None, [73]),
        ("catch_up", None, list(range(64, 74))),  # JobSpec's default catch_up_limit is 10
        ("catch_up", 3, [71, 72, 73]),
        ("catch_up", 1_000, list(range(2, 74))),
    ],
)
def test_three_days_down_with_each_misfire_policy(
    misfire: str, limit: int | None, late: list[int]
) -> None:
    preview = preview_schedule(
        "0 * * * *",
        start=T0,
        end=T0 + timedelta(days=4),
        downtime=DOWN,
        misfire=misfire,  # type: ignore[arg-type]
        catch_up_limit=limit,
    )
    assert len(preview.fires) == 96
    assert with_status(preview, "fired") == ON_TIME
    assert with_status(preview, "late") == hours(*late)
    assert with_status(preview, "missed") == [
        h for h in hours(*range(2, 74)) if h not in hours(*late)
    ]
    assert all(f.runs_at == RESTART for f in preview.fires if f.status == "late")
    assert all(f.runs_at is None for f in preview.fires if f.status == "missed")
    assert preview.misfire == misfire and preview.catch_up_limit == (limit or 10)


def test_notes_say_why_in_words() -> None:
    preview = preview_schedule("0 * * * *", start=T0, end=T0 + timedelta(days=4), downtime=DOWN)
    by_time = {f.scheduled_at: f for f in preview.fires}
    down = "host down 2025-01-01 01:30 to 2025-01-04 01:30 UTC"
    assert by_time[T0 + timedelta(hours=2)].note == (
        f"{down}; misfire=run_once runs only the latest missed fire (2025-01-04 01:00 UTC) at restart"
    )
    assert by_time[T0 + timedelta(hours=73)].note == (
        f"{down}; misfire=run_once runs the latest missed fire at restart"
    )
    skipped = preview_schedule(
        "0 * * * *", start=T0, end=T0 + timedelta(days=4), downtime=DOWN, misfire="skip"
    )
    assert skipped.fires[2].note == (
        f"{down}; misfire=skip drops every fire missed while the host is down"
    )


def test_a_fire_at_down_from_is_missed_and_one_at_up_at_runs_on_time() -> None:
    preview = preview_schedule(
        "0 * * * *",
        start=T0,
        end=T0 + timedelta(hours=6),
        downtime=[(T0 + timedelta(hours=2), T0 + timedelta(hours=4))],
        misfire="skip",
    )
    assert [(f.scheduled_at, f.status) for f in preview.fires] == [
        (T0, "fired"),
        (T0 + timedelta(hours=1), "fired"),
        (T0 + timedelta(hours=2), "missed"),
        (T0 + timedelta(hours=3), "missed"),
        (T0 + timedelta(hours=4), "fired"),
        (T0 + timedelta(hours=5), "fired"),
    ]


def test_two_windows_and_a_startup_run_at_each_restart() -> None:
    spec = JobSpec(id="boot", handler="pkg.mod:boot", schedule="0 */6 * * *", run_on_startup=True)
    windows = [
        (T0 + timedelta(hours=5), T0 + timedelta(hours=13)),
        (T0 + timedelta(hours=23), T0 + timedelta(hours=25)),
    ]
    preview = preview_schedule(
        spec, start=T0, end=T0 + timedelta(days=1, hours=12), downtime=windows
    )
    assert [(f.scheduled_at, f.runs_at, f.status) for f in preview.fires] == [
        (T0, T0, "fired"),
        (T0 + timedelta(hours=6), None, "missed"),
        (T0 + timedelta(hours=12), T0 + timedelta(hours=13), "late"),
        (T0 + timedelta(hours=13), T0 + timedelta(hours=13), "startup"),
        (T0 + timedelta(hours=18), T0 + timedelta(hours=18), "fired"),
        (T0 + timedelta(hours=24), T0 + timedelta(hours=25), "late"),
        (T0 + timedelta(hours=25), T0 + timedelta(hours=25), "startup"),
        (T0 + timedelta(hours=30), T0 + timedelta(hours=30), "fired"),
    ]
    assert preview.fires[3].note == "run_on_startup: the host runs the job once each time it starts"
    assert preview.job == "boot"


# -- what can be previewed ----------------------------------------------------------------------


def test_a_job_function_is_read_as_declared() -> None:
    preview = preview_schedule(nightly, start=utc(1, 6), end=utc(1, 8))
    assert preview.job == "nightly"
    assert (preview.schedule.expression, preview.schedule.timezone) == (
        "30 2 * * *",
        "Europe/Berlin",
    )
    assert (preview.misfire, preview.catch_up_limit, preview.jitter_ms) == ("catch_up", 10, 30_000)
    assert [f.scheduled_at for f in preview.fires] == [utc(1, 6, 1, 30), utc(1, 7, 1, 30)]
    assert [f.note for f in preview.fires] == ["jitter delays the start by up to 30 s"] * 2
    assert preview_schedule(get_job(nightly), start=utc(1, 6), end=utc(1, 8)) == preview


def test_arguments_override_what_the_job_declares() -> None:
    preview = preview_schedule(
        nightly,
        start=utc(1, 6),
        end=utc(1, 8),
        timezone="America/New_York",
        misfire="skip",
        catch_up_limit=4,
    )
    assert preview.schedule.timezone == "America/New_York"
    assert (preview.misfire, preview.catch_up_limit) == ("skip", 4)
    assert [f.scheduled_at for f in preview.fires] == [utc(1, 6, 7, 30), utc(1, 7, 7, 30)]


def test_a_bare_schedule_gets_utc_and_the_jobspec_defaults() -> None:
    preview = preview_schedule("@daily", start=T0, end=T0 + timedelta(days=2))
    assert preview.job is None
    assert (preview.schedule.timezone, preview.misfire, preview.catch_up_limit) == (
        "UTC",
        "run_once",
        10,
    )
    assert [f.scheduled_at for f in preview.fires] == [T0, T0 + timedelta(days=1)]


def test_the_late_fire_of_a_jittered_job_is_not_jittered() -> None:
    preview = preview_schedule(
        nightly,
        start=utc(1, 6),
        end=utc(1, 9),
        downtime=[(utc(1, 7), utc(1, 7, 12))],
        misfire="run_once",
    )
    assert [f.status for f in preview.fires] == ["fired", "late", "fired"]
    assert "jitter" in preview.fires[0].note and "jitter" not in preview.fires[1].note


def test_render_is_a_readable_table() -> None:
    preview = preview_schedule(
        "0 */8 * * *",
        timezone="Europe/Berlin",
        start=T0,
        end=T0 + timedelta(days=1),
        downtime=[(T0 + timedelta(hours=6), T0 + timedelta(hours=16))],
    )
    assert preview.render() == (
        "'0 */8 * * *' in Europe/Berlin, misfire=run_once\n"
        "from 2025-01-01 00:00 to 2025-01-02 00:00 UTC (end excluded)\n"
        "host down 2025-01-01 06:00 to 16:00 UTC\n"
        "\n"
        "local                        UTC               status  note\n"
        "2025-01-01 08:00 +01:00 CET  2025-01-01 07:00  missed  host down 2025-01-01 06:00 to"
        " 16:00 UTC; misfire=run_once runs only the latest missed fire (2025-01-01 15:00 UTC)"
        " at restart\n"
        "2025-01-01 16:00 +01:00 CET  2025-01-01 15:00  late    host down 2025-01-01 06:00 to"
        " 16:00 UTC; misfire=run_once runs the latest missed fire at restart\n"
        "2025-01-02 00:00 +01:00 CET  2025-01-01 23:00  fired"
    )
    assert str(preview) == preview.render()
    empty = preview_schedule("@yearly", start=utc(2, 1), end=utc(3, 1))
    assert empty.fires == () and empty.render().endswith("\n\nno fires in this window")


def test_the_preview_is_a_frozen_value() -> None:
    preview = preview_schedule("@daily", start=T0, end=T0 + timedelta(days=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        preview.fires = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preview.fires[0].status = "missed"  # type: ignore[misc]
    assert isinstance(preview.fires[0], PreviewFire)


# -- bad input ----------------------------------------------------------------------------------

NAIVE = datetime(2025, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"start": NAIVE}, ValueError, "start must be timezone-aware, got the naive datetime"),
        ({"end": NAIVE}, ValueError, "end must be timezone-aware"),
        ({"start": "2025-01-01"}, TypeError, "start must be a datetime, not str"),
        (
            {"end": T0 - timedelta(hours=1)},
            ValueError,
            r"end \(2024-12-31T23:00:00\+00:00\) must be after start",
        ),
        ({"end": T0}, ValueError, "must be after start"),
        (
            {"downtime": [(NAIVE, T0)]},
            ValueError,
            r"downtime\[0\] down_from must be timezone-aware",
        ),
        ({"downtime": [(T0, NAIVE)]}, ValueError, r"downtime\[0\] up_at must be timezone-aware"),
        (
            {"downtime": [(T0 + timedelta(hours=2), T0 + timedelta(hours=1))]},
            ValueError,
            r"downtime\[0\]: up_at must be after down_from",
        ),
        (
            {"downtime": [(T0 - timedelta(hours=1), T0 + timedelta(hours=1))]},
            ValueError,
            r"downtime\[0\] .* must lie within start..end",
        ),
        (
            {"downtime": [(T0, T0 + timedelta(days=3))]},
            ValueError,
            r"downtime\[0\] .* must lie within start..end",
        ),
        (
            {
                "downtime": [
                    (T0, T0 + timedelta(hours=5)),
                    (T0 + timedelta(hours=4), T0 + timedelta(hours=6)),
                ]
            },
            ValueError,
            r"downtime\[0\] and downtime\[1\] overlap or touch",
        ),
        (
            {
                "downtime": [
                    (T0 + timedelta(hours=5), T0 + timedelta(hours=6)),
                    (T0, T0 + timedelta(hours=5)),
                ]
            },
            ValueError,
            r"downtime\[1\] and downtime\[0\] overlap or touch",
        ),
        (
            {"downtime": [T0, T0 + timedelta(hours=1)]},
            TypeError,
            r"downtime\[0\] must be a pair \(down_from, up_at\)",
        ),
        (
            {"misfire": "all"},
            ValueError,
            "misfire must be 'skip', 'run_once' or 'catch_up', got 'all'",
        ),
        (
            {"catch_up_limit": 0},
            ValueError,
            "catch_up_limit must be a whole number of 1 or more, got 0",
        ),
        ({"timezone": "Berlin"}, ScheduleError, "did you mean 'Europe/Berlin'"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"start": T0, "end": T0 + timedelta(days=2), **kwargs}
    with pytest.raises(error, match=message):
        preview_schedule("0 * * * *", **arguments)


def test_bad_subjects_say_what_is_wrong() -> None:
    window: dict[str, Any] = {"start": T0, "end": T0 + timedelta(days=1)}

    def plain(ctx: JobContext) -> None: ...

    with pytest.raises(LookupError, match="plain is not a job; decorate it with @job"):
        preview_schedule(plain, **window)
    with pytest.raises(ScheduleError, match="minute 61 is outside 0-59"):
        preview_schedule("61 * * * *", **window)
    with pytest.raises(
        ValueError, match="job 'manual' has no schedule: it runs only when triggered"
    ):
        preview_schedule(JobSpec(id="manual", handler="pkg.mod:manual"), **window)

    @job("broken", schedule="* * * *", priority=11)
    def broken(ctx: JobContext) -> None: ...

    with pytest.raises(ManifestError, match="in job 'broken'") as caught:
        preview_schedule(broken, **window)
    assert {p.location for p in caught.value.problems} == {"jobs[0].schedule", "jobs[0].priority"}


def test_a_window_too_wide_to_read_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_FIRES", 10)
    assert len(preview_schedule("0 * * * *", start=T0, end=T0 + timedelta(hours=10)).fires) == 10
    with pytest.raises(ValueError, match="fires more than 10 times between start and end"):
        preview_schedule("0 * * * *", start=T0, end=T0 + timedelta(hours=11))


# -- the SDK alone, and the docs ------------------------------------------------------------------


def test_previewing_imports_neither_the_host_nor_the_sandbox() -> None:
    code = (
        "import sys, plugbox.sdk.schedule_preview\n"
        "bad = [m for m in sys.modules if m.startswith(('plugbox.host', 'plugbox.sandbox'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_docs_example_runs_and_prints_what_the_docs_show(
    capsys: pytest.CaptureFixture[str],
) -> None:
    section = DOCS.read_text().split("## Previewing a schedule", 1)[1]
    code, shown = re.findall(r"```(?:python|text)\n(.*?)```", section, re.DOTALL)[:2]
    exec(compile(code, str(DOCS), "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out == shown


def test_the_public_surface() -> None:
    assert sorted(module.__all__) == [
        "MAX_FIRES", "PreviewFire", "PreviewStatus", "SchedulePreview", "preview_schedule",
    ]  # fmt: skip
    assert all(hasattr(module, name) for name in module.__all__)
