"""Cron field grammar and the wall-clock matcher behind :mod:`plugbox.sdk.schedules`.

This module knows nothing about time zones. It answers one question: "what is the first local
date-time at or after ``w`` whose six fields match?". :mod:`plugbox.sdk._dst` turns those wall
times into instants. Keeping the two apart keeps each rule in one place: field semantics here,
DST semantics there.

We parse the fields ourselves instead of asking croniter because the error messages must name
the field (``minute 61 is outside 0-59``), because croniter accepts things that do not mean what
the author thinks (``*/90`` in the minute field fires once an hour), and because the host asks
for next fire times of many jobs: a compiled spec of sorted tuples and frozensets is cheap to
query and safe to share between schedules.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime

FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW = range(6)
_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
# What a step "restarts" at, for the message about steps that select a single value.
_PERIOD = ("minute", "hour", "day", "month", "year", "week")
_NAMES: dict[int, dict[str, int]] = {
    _MONTH: {
        name: number
        for number, name in enumerate(
            ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
            start=1,
        )
    },
    _DOW: {
        name: number
        for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
    },
}
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class FieldError(Exception):
    """One field that cannot be used; ``message`` is written for the plugin author."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def days_in_month(year: int, month: int) -> int:
    """Days in ``month``; a table beats ``calendar.monthrange``, which also computes a weekday."""
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


@dataclass(frozen=True, slots=True)
class CronSpec:
    """Six parsed fields, ready for matching. Immutable, so one spec serves many schedules."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    dom: frozenset[int]
    dom_last: bool  # ``L``: the last day of the month
    dow: frozenset[int]  # 0 = Sunday ... 6 = Saturday (7 is folded into 0)
    dow_nth: frozenset[tuple[int, int]]  # ``5#2``: (weekday, n)
    dow_last: frozenset[int]  # ``5L``: the last such weekday of the month
    # Vixie cron: when both day fields are restricted a day matches either; when one of them
    # starts with ``*`` both must match. Bizarre, but it is the standard every cron follows.
    day_or: bool
    every_day: bool
    # Seconds, minute and hour each hold exactly one value: the DST rule for such jobs is
    # "once per wall-clock day" (see _dst.py and docs/schedules.md).
    fixed_time: bool

    def day_parts_match(self, day: int, weekday: int, month_days: int) -> bool:
        """Whether a day matches, given its weekday (0 = Sunday) and its month's length."""
        dom_ok = day in self.dom or (self.dom_last and day == month_days)
        dow_ok = (
            weekday in self.dow
            or (weekday, (day - 1) // 7 + 1) in self.dow_nth
            or (weekday in self.dow_last and day + 7 > month_days)
        )
        return (dom_ok or dow_ok) if self.day_or else (dom_ok and dow_ok)

    def day_matches(self, year: int, month: int, day: int) -> bool:
        if self.every_day:
            return True
        weekday = (date(year, month, day).weekday() + 1) % 7
        return self.day_parts_match(day, weekday, days_in_month(year, month))

    def time_at_or_after(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        """The first matching time of day at or after ``hour:minute:second``, if any."""
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        i = bisect_left(hours, hour)
        if i == len(hours):
            return None
        if hours[i] == hour:
            j = bisect_left(minutes, minute)
            if j < len(minutes):
                if minutes[j] == minute:
                    k = bisect_left(seconds, second)
                    if k < len(seconds):
                        return hour, minute, seconds[k]
                    j += 1
                if j < len(minutes):
                    return hour, minutes[j], seconds[0]
            i += 1
            if i == len(hours):
                return None
        return hours[i], minutes[0], seconds[0]

    def next_match(self, start: datetime, last_year: int) -> datetime | None:
        """The first matching wall time at or after ``start`` (naive, whole seconds).

        Gives up after ``last_year`` and returns None: the caller decides what "never" means.
        """
        year, month, day = start.year, start.month, start.day
        clock: tuple[int, int, int] = (start.hour, start.minute, start.second)
        months = self.months
        while year <= last_year:
            if month not in months:
                i = bisect_right(months, month)
                year, month = (year, months[i]) if i < len(months) else (year + 1, months[0])
                day, clock = 1, (0, 0, 0)
                continue
            month_days = days_in_month(year, month)
            while day <= month_days:
                if self.day_matches(year, month, day):
                    found = self.time_at_or_after(*clock)
                    if found is not None:
                        return datetime(year, month, day, *found)
                day, clock = day + 1, (0, 0, 0)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day = 1
        return None

    def can_fire(self) -> bool:
        """Whether any calendar day ever matches.

        A month's day pattern depends only on its length and the weekday of its first day, and
        every (month, leap year, first weekday) combination recurs in every 400-year Gregorian
        cycle, so checking those few combinations is exact, not a bounded guess.
        """
        if self.every_day:
            return True
        for month in self.months:
            lengths = (28, 29) if month == 2 else (_DAYS_IN_MONTH[month],)
            for month_days in lengths:
                for first_weekday in range(7):
                    for day in range(1, month_days + 1):
                        if self.day_parts_match(day, (first_weekday + day - 1) % 7, month_days):
                            return True
        return False


def compile_fields(fields: tuple[str, ...]) -> CronSpec:
    """Parse six fields (second minute hour day-of-month month day-of-week) into a spec.

    Raises FieldError naming the field and value at fault.
    """
    if len(fields) != 6:  # pragma: no cover - callers normalise to six fields first
        raise FieldError(f"expected 6 fields, got {len(fields)}")
    seconds, minutes, hours, months = (
        _parse_plain(fields[i], i) for i in (_SECOND, _MINUTE, _HOUR, _MONTH)
    )
    dom, dom_last = _parse_dom(fields[_DOM])
    dow, dow_nth, dow_last = _parse_dow(fields[_DOW])
    dom_star = fields[_DOM][:1] in ("*", "?")
    dow_star = fields[_DOW][:1] in ("*", "?")
    spec = CronSpec(
        seconds=tuple(sorted(seconds)),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        months=tuple(sorted(months)),
        dom=frozenset(dom),
        dom_last=dom_last,
        dow=frozenset(dow),
        dow_nth=frozenset(dow_nth),
        dow_last=frozenset(dow_last),
        day_or=not (dom_star or dow_star),
        every_day=(dom_star or dow_star) and len(dom) == 31 and len(dow) == 7,
        fixed_time=len(seconds) == len(minutes) == len(hours) == 1,
    )
    if not spec.can_fire():
        raise FieldError(_never_fires(fields))
    return spec


def _never_fires(fields: tuple[str, ...]) -> str:
    dom, month, dow = fields[_DOM], fields[_MONTH], fields[_DOW]
    if dow[:1] in ("*", "?"):
        return f"never fires: day-of-month {dom!r} does not occur in month {month!r}"
    return (
        f"never fires: no date has day-of-month {dom!r} and day-of-week {dow!r} in month {month!r}"
    )


def _parse_plain(text: str, index: int) -> set[int]:
    values: set[int] = set()
    for term in _terms(text, index):
        values.update(_parse_term(term, index))
    return values


def _parse_dom(text: str) -> tuple[set[int], bool]:
    values: set[int] = set()
    last = False
    for term in _terms(text, _DOM):
        upper = term.upper()
        if upper == "L":
            last = True
        elif upper == "?":
            values.update(range(1, 32))
        elif "W" in upper:
            raise FieldError(
                f"day-of-month {term!r}: 'W' (nearest weekday) is not supported;"
                " use a list of days or L for the last day"
            )
        else:
            values.update(_parse_term(term, _DOM))
    return values, last


def _parse_dow(text: str) -> tuple[set[int], set[tuple[int, int]], set[int]]:
    values: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for term in _terms(text, _DOW):
        upper = term.upper()
        if upper == "?":
            values.update(range(7))
        elif "#" in term:
            day_text, _, n_text = term.partition("#")
            day = _value(day_text, _DOW) % 7
            if not _is_number(n_text) or not 1 <= int(n_text) <= 5:
                raise FieldError(
                    f"day-of-week {term!r}: the number after '#' must be 1-5"
                    " (the 1st to 5th such weekday of the month)"
                )
            nth.add((day, int(n_text)))
        elif upper.endswith("L"):
            if upper == "L":
                raise FieldError(
                    "day-of-week 'L' alone is ambiguous; write e.g. '5L' for the last Friday"
                    " of the month, or put L in the day-of-month field for the last day"
                )
            last.add(_value(term[:-1], _DOW) % 7)
        else:
            values.update(v % 7 for v in _parse_term(term, _DOW))
    return values, nth, last


def _terms(text: str, index: int) -> list[str]:
    terms = text.split(",")
    if any(not term for term in terms):
        raise FieldError(f"{FIELD_NAMES[index]} {text!r} has an empty item in its list")
    return terms


def _parse_term(term: str, index: int) -> range:
    """One list item: ``*``, ``N``, ``A-B``, with an optional ``/STEP`` after any of them."""
    name = FIELD_NAMES[index]
    low, high = _BOUNDS[index]
    body, slash, step_text = term.partition("/")
    if body == "*":
        start, stop = low, high
    elif "-" in body:
        first, _, last = body.partition("-")
        start, stop = _value(first, index), _value(last, index)
        if start > stop:
            raise FieldError(
                f"{name} range {body!r} runs backwards; cron ranges do not wrap around,"
                f" write {first}-{high},{low}-{last}"
            )
    else:
        start = _value(body, index)
        # "5/15" means 5-max/15 (Quartz, croniter, robfig); a bare "5" is just 5.
        stop = high if slash else start
    if not slash:
        return range(start, stop + 1)
    if not _is_number(step_text) or int(step_text) == 0:
        raise FieldError(f"{name} step {step_text!r} in {term!r} must be a whole number above 0")
    selected = range(start, stop + 1, int(step_text))
    distinct = {v % 7 for v in selected} if index == _DOW else set(selected)
    if len(distinct) == 1 and stop > start:
        why = (
            f"the range {body} is shorter than the step"
            if "-" in body
            else f"steps restart every {_PERIOD[index]}, so cron cannot express that interval"
        )
        raise FieldError(
            f"{name} step {step_text} in {term!r} selects only {selected[0]}: {why};"
            f" write {selected[0]} if that is what you mean"
        )
    return selected


def _is_number(text: str) -> bool:
    # str.isdigit alone accepts "²" and other digits int() refuses.
    return text.isascii() and text.isdigit()


def _value(text: str, index: int) -> int:
    name = FIELD_NAMES[index]
    low, high = _BOUNDS[index]
    if not text:
        raise FieldError(f"{name} is missing a number (a '-', '/' or '#' with nothing beside it)")
    if _is_number(text):
        number = int(text)
        if not low <= number <= high:
            raise FieldError(f"{name} {number} is outside {low}-{high}")
        return number
    names = _NAMES.get(index)
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if text.upper().startswith(("H", "R")) and text[1:2] in ("", "(", "/"):
        raise FieldError(f"{name} {text!r}: hashed/random values (H, R) are not supported")
    examples = {_MONTH: " or a name such as jan", _DOW: " or a name such as mon"}
    raise FieldError(f"{name} {text!r} is not a number{examples.get(index, '')}")
