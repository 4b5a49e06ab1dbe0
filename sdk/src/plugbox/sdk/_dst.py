"""From matching wall times to instants: the daylight-saving rule of plugbox schedules.

:mod:`plugbox.sdk._cron` finds wall-clock times whose fields match. A wall time in a zone with
DST is either normal (one instant), ambiguous (two instants, during a fall-back overlap) or
imaginary (no instant, inside a spring-forward gap). The rule, documented in docs/schedules.md:

* a *fixed-time* job (second, minute and hour each a single value, e.g. ``30 1 * * *``) fires
  once per wall-clock day: in an overlap only at the first occurrence (``fold=0``); in a gap at
  the first instant after the gap (``30 2 * * *`` in Europe/Berlin on 2025-03-30 fires at 03:00
  CEST);
* an *interval* job (anything else, e.g. ``*/15 * * * *`` or ``0 * * * *``) follows elapsed real
  time: in an overlap it fires in both passes, and wall times inside a gap do not exist, so they
  are skipped without a catch-up burst.

Instants are carried as naive UTC datetimes so comparisons never meet Python's rule that aware
datetimes sharing a tzinfo compare by wall time, ignoring ``fold``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from plugbox.sdk._cron import CronSpec

ONE_SECOND = timedelta(seconds=1)
# Every day pattern recurs within one 400-year Gregorian cycle; a schedule that has not fired
# by then never will (for example an interval job whose only hours fall in a DST gap).
SEARCH_YEARS = 400

# (instant as naive UTC, the same instant as an aware datetime in the schedule's zone)
Fire = tuple[datetime, datetime]


def next_fire(spec: CronSpec, zone: ZoneInfo, is_utc: bool, after: datetime) -> Fire | None:
    """The first fire strictly after ``after`` (naive UTC), or None if there is none."""
    try:
        if is_utc:
            start = after.replace(microsecond=0) + ONE_SECOND
            wall = spec.next_match(start, _last_year(start))
            return None if wall is None else (wall, wall.replace(tzinfo=zone))
        local = zone.fromutc(after.replace(tzinfo=zone))
        if spec.fixed_time:
            return _next_fixed(spec, zone, after, local)
        return _next_interval(spec, zone, after, local)
    except OverflowError:  # the search ran past datetime.max
        return None


def _next_fixed(spec: CronSpec, zone: ZoneInfo, after: datetime, local: datetime) -> Fire | None:
    # Each wall time maps to exactly one instant (its first), and that mapping never goes
    # backwards, so the first wall time whose instant lies after `after` is the answer.
    # Starting at `after`'s own wall time (not one second later) matters when `after` is in
    # the second pass of an overlap: the wall times just ahead of it were already used.
    wall = local.replace(tzinfo=None, microsecond=0, fold=0)
    last_year = _last_year(wall)
    candidate = spec.next_match(wall, last_year)
    while candidate is not None:
        fire = _first_instant(zone, candidate)
        if fire[0] > after:
            return fire
        candidate = spec.next_match(candidate + ONE_SECOND, last_year)
    return None


def _next_interval(spec: CronSpec, zone: ZoneInfo, after: datetime, local: datetime) -> Fire | None:
    wall = local.replace(tzinfo=None, microsecond=0, fold=0)
    last_year = _last_year(wall)
    best = _first_real_after(spec, zone, after, wall + ONE_SECOND, last_year)
    if local.fold == 0:
        # In the first pass of an overlap the clock is about to be set back: the wall times
        # from the start of the overlap happen again, and one of them may come before `best`.
        now_offset = _utcoffset(zone, local)
        later_offset = _utcoffset(zone, wall.replace(fold=1))
        if later_offset < now_offset:
            floor = after.replace(microsecond=0)
            turn = _transition(zone, floor, floor + (now_offset - later_offset))
            replayed = spec.next_match(turn + later_offset, last_year)
            if replayed is not None:
                fire = _second_pass_instant(zone, replayed)
                if fire is not None and fire[0] > after and (best is None or fire[0] < best[0]):
                    best = fire
    return best


def _first_real_after(
    spec: CronSpec, zone: ZoneInfo, after: datetime, start: datetime, last_year: int
) -> Fire | None:
    candidate = spec.next_match(start, last_year)
    while candidate is not None:
        first = _utcoffset(zone, candidate)
        second = _utcoffset(zone, candidate.replace(fold=1))
        if first == second:
            return candidate - first, candidate.replace(tzinfo=zone)
        if first > second:  # overlap: the earlier instant unless `after` is already past it
            if candidate - first > after:
                return candidate - first, candidate.replace(tzinfo=zone)
            return candidate - second, candidate.replace(tzinfo=zone, fold=1)
        # Gap: these wall times never happen. Resume at the wall time right after the gap.
        turn = _transition(zone, candidate - second, candidate - first)
        candidate = spec.next_match(turn + second, last_year)
    return None


def _first_instant(zone: ZoneInfo, wall: datetime) -> Fire:
    """The one instant a fixed-time job fires for ``wall``: its first, or the end of its gap."""
    first = _utcoffset(zone, wall)
    second = _utcoffset(zone, wall.replace(fold=1))
    if first >= second:  # normal, or an overlap whose first pass (fold=0) we take
        return wall - first, wall.replace(tzinfo=zone)
    turn = _transition(zone, wall - second, wall - first)
    return turn, zone.fromutc(turn.replace(tzinfo=zone))


def _second_pass_instant(zone: ZoneInfo, wall: datetime) -> Fire | None:
    first = _utcoffset(zone, wall)
    second = _utcoffset(zone, wall.replace(fold=1))
    if first > second:
        return wall - second, wall.replace(tzinfo=zone, fold=1)
    if first == second:
        return wall - first, wall.replace(tzinfo=zone)
    return None  # a gap right after an overlap; _first_real_after already handles gaps


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant (naive UTC) in ``(before, after]`` that has ``after``'s UTC offset.

    zoneinfo does not expose its transition table, so bisect on whole seconds: offsets change
    on whole seconds, and the window is one DST shift wide (about 12 steps for an hour).
    """
    target = _offset_at(zone, after)
    low, high = before, after
    while (span := int((high - low).total_seconds())) > 1:
        middle = low + timedelta(seconds=span // 2)
        if _offset_at(zone, middle) == target:
            high = middle
        else:
            low = middle
    return high


def _offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    return _utcoffset(zone, zone.fromutc(instant.replace(tzinfo=zone)))


def _utcoffset(zone: ZoneInfo, moment: datetime) -> timedelta:
    offset = zone.utcoffset(moment)
    assert offset is not None, "a ZoneInfo always knows its offset"
    return offset


def _last_year(start: datetime) -> int:
    return min(datetime.max.year, start.year + SEARCH_YEARS)
