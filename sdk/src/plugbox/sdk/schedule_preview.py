"""Preview a job's schedule over simulated time: which fires run on time, which late, which never.

An author calls :func:`preview_schedule` in a test to see what the host will do with a job over
a DST week or across a downtime, without a host installed. The answer comes from the functions
the host's scheduler itself calls (:meth:`Schedule.iter_after` for fire times,
:func:`plugbox.sdk.firing.missed_fires` for what runs after a downtime), and
tests/host/scheduler/test_preview_matches_plan.py drives the host's ``Plan`` through the same
scenarios to keep the two in agreement.

The host, as the preview models it:

* it has been running the job since before ``start``, so its stored last fire is the job's
  latest instant before ``start``, and while it is up every fire starts on time;
* a downtime ``(down_from, up_at)`` is the half-open span ``[down_from, up_at)``: nothing fires
  in it. At ``up_at`` the host starts again and the misfire policy decides which fires since the
  stored last fire run now (``skip``: none; ``run_once``: the latest; ``catch_up``: the latest
  ``catch_up_limit``, oldest first). A fire due exactly at ``up_at`` is not missed: it runs on
  time. A ``run_on_startup`` job also runs once at each ``up_at``;
* times are nominal: jitter (which only delays on-time fires, never late ones) is named in the
  note, not drawn. Concurrency, retries, pausing and ``enabled`` are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from plugbox.sdk.errors import ManifestError
from plugbox.sdk.firing import latest_fires, missed_fires
from plugbox.sdk.jobs import JobDeclaration, define_manifest, get_job
from plugbox.sdk.manifest import JobSpec, Misfire
from plugbox.sdk.schedules import Schedule, as_utc, parse_schedule

__all__ = ["MAX_FIRES", "PreviewFire", "PreviewStatus", "SchedulePreview", "preview_schedule"]

#: ``fired``: ran at its scheduled time. ``late``: fell in a downtime and ran when the host came
#: back, because the misfire policy kept it. ``missed``: fell in a downtime and never ran.
#: ``startup``: the extra run of a ``run_on_startup`` job when the host came back.
PreviewStatus = Literal["fired", "late", "missed", "startup"]

#: A preview lists every fire; past this many the window is too wide to read, so it is refused.
MAX_FIRES = 100_000

_Subject = Callable[..., Any] | JobDeclaration | JobSpec | str
_POLICIES: tuple[Misfire, ...] = get_args(Misfire)

_MICROSECOND = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
# How far back to look for the last fire before `start`: a schedule that fires at all fires
# within one 400-year Gregorian cycle (146,097 days).
_LOOKBACK = timedelta(days=146_097)
_PREVIEW_PLUGIN = "schedule-preview"


@dataclass(frozen=True, slots=True)
class PreviewFire:
    """One row of a preview: a fire the schedule asks for, and what the host does with it."""

    scheduled_at: datetime  #: the nominal instant, UTC (a startup run: when the host started)
    local: datetime  #: the same instant in the job's zone, with ``fold=1`` in a repeated hour
    runs_at: datetime | None  #: when the host starts the run, UTC; None: it never runs
    status: PreviewStatus
    note: str = ""  #: why, in words: DST, downtime and misfire policy, jitter


@dataclass(frozen=True, slots=True)
class SchedulePreview:
    """What the host does with a job's fires in ``[start, end)``; ``print()`` it to read it."""

    fires: tuple[PreviewFire, ...]  #: in time order
    job: str | None  #: the job id, or None when a bare schedule string was previewed
    schedule: Schedule
    misfire: Misfire
    catch_up_limit: int
    jitter_ms: int
    start: datetime  #: UTC
    end: datetime  #: UTC, excluded
    downtime: tuple[tuple[datetime, datetime], ...]  #: (down_from, up_at) in UTC, in order

    def render(self) -> str:
        """A table: local wall time with offset and zone, UTC time, status and note."""
        seconds = self.schedule.has_seconds
        what = f"{self.schedule.expression!r} in {self.schedule.timezone}"
        if self.job is not None:
            what = f"job {self.job!r}: {what}"
        lines = [
            f"{what}, misfire={self.misfire}"
            + (f" (catch_up_limit={self.catch_up_limit})" if self.misfire == "catch_up" else "")
            + (f", jitter up to {_duration(self.jitter_ms)}" if self.jitter_ms else ""),
            f"from {_wall(self.start, seconds)} to {_wall(self.end, seconds)} UTC (end excluded)",
            *(_down_text(down, up, seconds) for down, up in self.downtime),
            "",
        ]
        if not self.fires:
            return "\n".join([*lines, "no fires in this window"])
        rows = [("local", "UTC", "status", "note")] + [
            (_local_text(f.local, seconds), _wall(f.scheduled_at, seconds), f.status, f.note)
            for f in self.fires
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        for row in rows:
            cells = [row[column].ljust(widths[column]) for column in range(3)]
            lines.append("  ".join([*cells, row[3]]).rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def preview_schedule(
    subject: _Subject,
    *,
    start: datetime,
    end: datetime,
    downtime: Iterable[tuple[datetime, datetime]] = (),
    misfire: Misfire | None = None,
    timezone: str | None = None,
    catch_up_limit: int | None = None,
) -> SchedulePreview:
    """What the host would do with ``subject``'s fires in ``[start, end)``, given ``downtime``.

    ``subject`` is a function decorated with ``@job`` (validated as ``define_manifest`` would),
    its :class:`JobDeclaration`, a :class:`JobSpec`, or a schedule string (then the zone is UTC
    and the misfire settings are JobSpec's defaults). ``misfire``, ``timezone`` and
    ``catch_up_limit`` replace the job's own values, as an operator's override would.
    ``start``, ``end`` and each ``(down_from, up_at)`` window must be timezone-aware; windows
    must lie within ``[start, end]`` and must not overlap. The module docstring states the model
    of the host this follows.
    """
    spec, expression = _spec_of(subject)
    policy = _misfire(spec.misfire if misfire is None else misfire)
    limit = _catch_up_limit(spec.catch_up_limit if catch_up_limit is None else catch_up_limit)
    schedule = parse_schedule(expression, spec.timezone if timezone is None else timezone)
    first, last = as_utc(start, "start"), as_utc(end, "end")
    if last <= first:
        raise ValueError(
            f"end ({last.isoformat()}) must be after start ({first.isoformat()});"
            " the preview covers [start, end)"
        )
    windows = _windows(downtime, first, last)
    simulation = _Simulation(schedule, policy, limit, spec.jitter_ms, spec.run_on_startup)
    fires = simulation.run(_nominal(schedule, first, last), windows, first, last)
    return SchedulePreview(
        fires=tuple(fires),
        job=None if isinstance(subject, str) else spec.id,
        schedule=schedule,
        misfire=policy,
        catch_up_limit=limit,
        jitter_ms=spec.jitter_ms,
        start=first,
        end=last,
        downtime=tuple(windows),
    )


class _Simulation:
    """Walks the nominal fires through the downtime windows, keeping the host's stored last fire."""

    def __init__(
        self, schedule: Schedule, policy: Misfire, limit: int, jitter_ms: int, on_startup: bool
    ) -> None:
        self.schedule, self.policy, self.limit = schedule, policy, limit
        self.on_startup = on_startup
        self.zone = ZoneInfo(schedule.timezone)
        self.seconds = schedule.has_seconds
        self.jitter = (
            f"jitter delays the start by up to {_duration(jitter_ms)}" if jitter_ms else ""
        )
        # Wall-clock matching does not depend on the zone, so the same fields read in UTC (which
        # has no DST) tell whether a fire's wall time is one the author wrote.
        self.wall_twin = replace(schedule, timezone="UTC")

    def run(
        self,
        nominal: list[datetime],
        windows: list[tuple[datetime, datetime]],
        start: datetime,
        end: datetime,
    ) -> list[PreviewFire]:
        rows: list[PreviewFire] = []
        stored = _stored_before(self.schedule, start) if windows else None
        position = 0
        for down, up in windows:
            while position < len(nominal) and _utc(nominal[position]) < down:
                rows.append(self._on_time(nominal[position]))
                stored = _utc(nominal[position])
                position += 1
            inside: list[datetime] = []
            while position < len(nominal) and _utc(nominal[position]) < up:
                inside.append(nominal[position])
                position += 1
            # Exactly what Plan.load asks at restart: the host's clock reads `up`.
            kept = missed_fires(self.schedule, stored, up, self.policy, self.limit)
            down_text = _down_text(down, up, self.seconds)
            chosen = set(kept)
            for local in inside:
                if _utc(local) in chosen:
                    note = f"{down_text}; {self._kept_reason()}"
                    rows.append(self._row(local, up, "late", note))
                else:
                    note = f"{down_text}; {self._dropped_reason(stored, kept)}"
                    rows.append(self._row(local, None, "missed", note))
            if kept:
                stored = kept[-1]
            if self.on_startup and up < end:
                note = "run_on_startup: the host runs the job once each time it starts"
                rows.append(PreviewFire(up, up.astimezone(self.zone), up, "startup", note))
        rows.extend(self._on_time(local) for local in nominal[position:])
        return rows

    def _on_time(self, local: datetime) -> PreviewFire:
        return self._row(local, _utc(local), "fired", self.jitter)

    def _row(
        self, local: datetime, runs_at: datetime | None, status: PreviewStatus, note: str
    ) -> PreviewFire:
        notes = [part for part in (self._dst_note(local), note) if part]
        return PreviewFire(_utc(local), local, runs_at, status, "; ".join(notes))

    def _kept_reason(self) -> str:
        if self.policy == "run_once":
            return "misfire=run_once runs the latest missed fire at restart"
        return (
            f"misfire=catch_up runs the latest {self.limit} missed fires (catch_up_limit)"
            " at restart, oldest first"
        )

    def _dropped_reason(self, stored: datetime | None, kept: list[datetime]) -> str:
        if self.policy == "skip":
            return "misfire=skip drops every fire missed while the host is down"
        if stored is None or not kept:
            return "the host has no earlier fire on record, so it counts nothing as missed"
        if self.policy == "run_once":
            latest = _wall(kept[-1], self.seconds)
            return f"misfire=run_once runs only the latest missed fire ({latest} UTC) at restart"
        return (
            f"misfire=catch_up runs only the latest {self.limit} missed fires (catch_up_limit)"
            " at restart"
        )

    def _dst_note(self, local: datetime) -> str:
        offset = local.utcoffset() or timedelta(0)
        before = (_utc(local) - _SECOND).astimezone(self.zone).utcoffset() or timedelta(0)
        # A fire whose wall time the fields do not match can only be a fixed-time fire moved to
        # the end of a spring-forward gap, so only fires right at a transition are checked.
        if offset > before and not _fires_at(self.wall_twin, local.replace(tzinfo=UTC, fold=0)):
            return (
                f"clocks spring forward {_shift_text(offset - before)}: the time written does"
                " not exist today, so a fixed-time job fires at the end of the gap"
            )
        first = local.replace(fold=0).utcoffset()
        second = local.replace(fold=1).utcoffset()
        if first == second:
            return ""
        wall = local.strftime("%H:%M:%S" if self.seconds else "%H:%M")
        if local.fold == 1:
            return f"clocks fall back: second pass of {wall}; an interval job fires in both passes"
        if _fires_at(self.schedule, local.replace(fold=1).astimezone(UTC)):
            return f"clocks fall back: first pass of {wall}; it fires again in the second pass"
        return (
            f"clocks fall back: {wall} happens twice today; a fixed-time job fires only in the"
            " first pass"
        )


def _spec_of(subject: _Subject) -> tuple[JobSpec, str]:
    """The job as the host would see it, and its schedule expression."""
    if isinstance(subject, str):
        # JobSpec's defaults, so a bare schedule gets what an undecorated job would.
        return JobSpec(id=_PREVIEW_PLUGIN, handler="preview:schedule"), subject
    if isinstance(subject, JobSpec):
        spec = subject
    else:
        declaration = subject if isinstance(subject, JobDeclaration) else get_job(subject)
        try:
            manifest = define_manifest(
                id=_PREVIEW_PLUGIN, version="0", name="schedule preview", jobs=[declaration]
            )
        except ManifestError as error:
            raise ManifestError(error.problems, f"job {declaration.id!r}") from None
        spec = manifest.jobs[0]
    if spec.schedule is None:
        raise ValueError(
            f"job {spec.id!r} has no schedule: it runs only when triggered, so there is nothing"
            " to preview"
        )
    return spec, spec.schedule


def _misfire(value: object) -> Misfire:
    for policy in _POLICIES:
        if value == policy:
            return policy
    raise ValueError(f"misfire must be 'skip', 'run_once' or 'catch_up', got {value!r}")


def _catch_up_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"catch_up_limit must be a whole number of 1 or more, got {value!r}")
    return value


def _windows(
    downtime: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The downtime windows in UTC and in order, refusing what the host could not live through."""
    windows: list[tuple[datetime, datetime, str]] = []
    for index, pair in enumerate(downtime):
        name = f"downtime[{index}]"
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(
                f"{name} must be a pair (down_from, up_at), got {pair!r};"
                " pass a sequence of pairs: downtime=[(down_from, up_at)]"
            )
        down, up = as_utc(pair[0], f"{name} down_from"), as_utc(pair[1], f"{name} up_at")
        if up <= down:
            raise ValueError(f"{name}: up_at must be after down_from, got {_span(down, up)}")
        if down < start or up > end:
            raise ValueError(
                f"{name} ({_span(down, up)}) must lie within start..end ({_span(start, end)});"
                " widen the preview or shorten the window"
            )
        windows.append((down, up, name))
    windows.sort()
    for (_, up, name), (down, _, later) in pairwise(windows):
        if down <= up:
            raise ValueError(
                f"{name} and {later} overlap or touch (the host would restart while it is down);"
                " merge them into one window"
            )
    return [(down, up) for down, up, _ in windows]


def _nominal(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every fire in ``[start, end)`` as the schedule's local aware datetimes."""
    fires: list[datetime] = []
    for local in schedule.iter_after(start - _MICROSECOND):
        if _utc(local) >= end:
            break
        if len(fires) == MAX_FIRES:
            raise ValueError(
                f"{schedule.expression!r} fires more than {MAX_FIRES:,} times between start"
                " and end; preview a shorter window"
            )
        fires.append(local)
    return fires


def _stored_before(schedule: Schedule, start: datetime) -> datetime | None:
    """The last fire a host that ran the job until ``start`` has on record."""
    try:
        floor = start - _LOOKBACK
    except OverflowError:
        floor = datetime.min.replace(tzinfo=UTC)
    found = latest_fires(schedule, floor, start - _MICROSECOND, 1)
    return found[0] if found else None


def _fires_at(schedule: Schedule, instant: datetime) -> bool:
    following = next(iter(schedule.iter_after(instant - _MICROSECOND)), None)
    return following is not None and _utc(following) == instant


def _utc(moment: datetime) -> datetime:
    # Convert before comparing: aware datetimes in a repeated hour never compare equal to ones
    # in another zone (PEP 495), so instants are always compared in UTC.
    return moment.astimezone(UTC)


def _wall(moment: datetime, seconds: bool) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _local_text(local: datetime, seconds: bool) -> str:
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{_wall(local, seconds)} {sign}{minutes // 60:02d}:{minutes % 60:02d} {local.tzname()}"


def _span(down: datetime, up: datetime) -> str:
    return f"{down.isoformat()} to {up.isoformat()}"


def _down_text(down: datetime, up: datetime, seconds: bool) -> str:
    back = _wall(up, seconds)
    if down.date() == up.date():
        back = back.split(" ", 1)[1]
    return f"host down {_wall(down, seconds)} to {back} UTC"


def _duration(ms: int) -> str:
    return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms} ms"


def _shift_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
