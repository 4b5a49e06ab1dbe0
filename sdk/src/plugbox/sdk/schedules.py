"""Cron schedules for plugbox jobs: parsing, validation and next fire times.

A job's ``schedule`` is a cron expression with 5 fields (``minute hour day-of-month month
day-of-week``), 6 fields with the seconds FIRST (``*/10 * * * * *`` = every 10 seconds, as in
node-cron, Quartz and robfig/cron), or an alias such as ``@daily``. ``${NAME}`` is replaced from
the environment before parsing, so an operator can move a job without editing the plugin.

Everything an author can get wrong is rejected here, at parse time, with a message that names
the field and the value (``'61 * * * *': minute 61 is outside 0-59``) -- including expressions
other cron libraries accept but that never fire or do not mean what they look like.

Fire times are computed in the schedule's IANA time zone with one explicit daylight-saving rule
(see :mod:`plugbox.sdk._dst` and docs/schedules.md): fixed-time jobs fire once per wall-clock
day, interval jobs follow elapsed real time.

A :class:`Schedule` is parsed once and keeps its compiled fields, so the host can ask
:meth:`Schedule.next_after` for many jobs without re-parsing anything.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from types import MappingProxyType
from zoneinfo import ZoneInfo

from plugbox.sdk._cron import CronSpec, FieldError, compile_fields
from plugbox.sdk._dst import SEARCH_YEARS, next_fire
from plugbox.sdk.errors import ScheduleError

__all__ = [
    "SCHEDULE_ALIASES",
    "Schedule",
    "as_utc",
    "check_timezone",
    "next_fire_times",
    "parse_schedule",
]

#: The standard cron nicknames, as the 5-field expressions they stand for.
SCHEDULE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
)

_SIX_FIELDS = "second minute hour day-of-month month day-of-week"
# Zones that are UTC by definition skip the DST machinery; other fixed-offset zones just take
# the general path, which is correct for them too, only a little slower.
_UTC_KEYS = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed, validated cron schedule in one time zone.

    Build it with :func:`parse_schedule`. Constructing it directly works too (``resolved`` must
    then already be the 6-field form); either way the fields are compiled once, here, and every
    later :meth:`next_after` reuses them.
    """

    expression: str  #: as the author wrote it
    resolved: str  #: after ``${ENV}`` and aliases, as 6 fields: "sec min hour dom mon dow"
    timezone: str  #: IANA name, e.g. "Europe/Berlin"
    has_seconds: bool  #: the author wrote a seconds field (6 fields)
    _spec: CronSpec = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _utc: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = tuple(self.resolved.split())
        if len(fields) != 6:
            raise ScheduleError(
                self.expression,
                f"resolved form {self.resolved!r} must have 6 fields ({_SIX_FIELDS});"
                " use parse_schedule() to build a Schedule from what an author wrote",
            )
        try:
            spec = _compile(fields)
        except FieldError as error:
            raise ScheduleError(self.expression, error.message) from None
        zone = check_timezone(self.timezone)
        # The dataclass is frozen so that schedules can be shared and hashed; the compiled
        # parts are derived from the public fields and set exactly once, here.
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_utc", zone.key in _UTC_KEYS)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``, in the schedule's zone.

        ``after`` must be timezone-aware: a naive datetime would silently mean a different
        instant depending on the machine. Raises ScheduleError if the schedule never fires
        again (possible only for interval jobs whose hours all fall into DST gaps, or near
        the year 9999).
        """
        fire = next_fire(self._spec, self._zone, self._utc, _as_utc(after))
        if fire is not None:
            return fire[1]
        raise ScheduleError(
            self.expression,
            f"does not fire after {after.isoformat()} in {self.timezone}"
            f" (searched {SEARCH_YEARS} years)",
        )

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after``, in order, for as long as there are any.

        ``after`` is checked now, not when the first value is pulled.
        """
        return self._fires(_as_utc(after))

    def _fires(self, instant: datetime) -> Iterator[datetime]:
        spec, zone, is_utc = self._spec, self._zone, self._utc
        while (fire := next_fire(spec, zone, is_utc, instant)) is not None:
            instant, local = fire
            yield local


def parse_schedule(
    expression: str, timezone: str = "UTC", env: Mapping[str, str] | None = None
) -> Schedule:
    """Parse what an author wrote into a :class:`Schedule`, or raise ScheduleError saying why.

    ``env`` (default: ``os.environ``, read now) supplies ``${NAME}`` substitutions; ``$$`` is a
    literal ``$``. Substituted text is not scanned again.
    """
    if not isinstance(expression, str):
        raise ScheduleError(
            str(expression), f"a schedule must be a string, not {type(expression).__name__}"
        )
    written = expression.strip()
    if not written:
        raise ScheduleError(
            expression,
            "empty schedule; write 5 cron fields such as '*/5 * * * *', 6 with seconds first,"
            " or an alias such as @daily",
        )
    substituted = _substitute(expression, written, os.environ if env is None else env)

    def fail(reason: str) -> ScheduleError:
        if substituted != written:
            reason += f" (after ${{...}} substitution the schedule reads {substituted!r})"
        return ScheduleError(expression, reason)

    fields, has_seconds = _split(substituted, fail)
    try:
        _compile(fields)
    except FieldError as error:
        raise fail(_explain(fields, has_seconds, error)) from None
    check_timezone(timezone)
    return Schedule(
        expression=expression,
        resolved=" ".join(fields),
        timezone=timezone,
        has_seconds=has_seconds,
    )


def next_fire_times(
    schedule: str | Schedule,
    after: datetime,
    n: int = 1,
    tz: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[datetime]:
    """The next ``n`` fire times strictly after ``after`` (what ``plugbox jobs next`` prints).

    ``schedule`` may be an expression (parsed with ``tz``, default UTC, and ``env``) or a
    :class:`Schedule`; ``tz`` then evaluates that schedule in another zone. ``env`` only
    applies to expressions: a Schedule's substitutions were made when it was parsed.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    if isinstance(schedule, Schedule):
        if env is not None:
            raise ValueError("env applies only to a schedule expression; this Schedule is parsed")
        if tz is not None and tz != schedule.timezone:
            schedule = replace(schedule, timezone=tz)
    else:
        schedule = parse_schedule(schedule, "UTC" if tz is None else tz, env)
    return list(islice(schedule.iter_after(after), n))


def check_timezone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or ScheduleError naming the zone and what to write."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(str(name), "a time zone must be an IANA name such as 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    known = _zone_names()
    # Classify by the name, not by the exception: zoneinfo raises differently for the same name
    # depending on whether the tzdata wheel or /usr/share/zoneinfo answers.
    not_a_name = (
        name.startswith("/")
        or ".." in name.split("/")
        or any(key.startswith(name.rstrip("/") + "/") for key in known)
    )
    reason = "not an IANA time zone name" if not_a_name else "unknown time zone"
    if not known:
        reason += (
            "; no time zone database was found on this machine (no /usr/share/zoneinfo):"
            " install the tzdata package"
        )
    else:
        close = _similar_zones(name, known)
        if close:
            reason += "; did you mean " + " or ".join(repr(key) for key in close) + "?"
        else:
            reason += "; use the Area/City form, such as 'Europe/Berlin' or 'America/New_York'"
    raise ScheduleError(name, reason)


@lru_cache(maxsize=4096)
def _compile(fields: tuple[str, ...]) -> CronSpec:
    # A bounded cache, not state: a spec is immutable, and hosts with many jobs repeat the
    # same few expressions, so they share one compiled spec (and parse_schedule's validation
    # pass costs nothing when Schedule.__post_init__ compiles the same fields again).
    return compile_fields(fields)


def as_utc(instant: object, name: str = "instant") -> datetime:
    """``instant`` as an aware UTC datetime, refusing anything that names no instant.

    The one check every caller that takes an instant from a user shares (the host's scheduler,
    ``preview_schedule``), so a naive datetime gets the same clear error everywhere.
    """
    if not isinstance(instant, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(instant).__name__}")
    if instant.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, got the naive datetime {instant.isoformat()};"
            " use datetime(..., tzinfo=UTC) or tzinfo=ZoneInfo('Europe/Berlin')"
        )
    return instant.astimezone(UTC)


def _as_utc(after: datetime) -> datetime:
    if not isinstance(after, datetime):
        raise TypeError(f"after must be a datetime, not {type(after).__name__}")
    offset = after.utcoffset()
    if offset is None:
        raise ValueError(
            f"after must be timezone-aware, got the naive datetime {after.isoformat()};"
            " attach a zone, e.g. datetime.now(timezone.utc) or"
            " after.replace(tzinfo=ZoneInfo('Europe/Berlin'))"
        )
    return after.replace(tzinfo=None) - offset


def _substitute(expression: str, text: str, env: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` from ``env``; ``$$`` is a literal ``$``; any other ``$`` is an error."""
    parts: list[str] = []
    position = 0
    while (dollar := text.find("$", position)) != -1:
        parts.append(text[position:dollar])
        if text.startswith("$$", dollar):
            parts.append("$")
            position = dollar + 2
            continue
        if not text.startswith("${", dollar):
            raise ScheduleError(expression, "a '$' must start ${NAME} (write $$ for a literal '$')")
        end = text.find("}", dollar)
        if end == -1:
            raise ScheduleError(expression, f"unterminated {text[dollar:]!r}; write ${{NAME}}")
        name = text[dollar + 2 : end]
        if not name.isidentifier() or not name.isascii():
            raise ScheduleError(
                expression,
                f"{text[dollar : end + 1]!r} is not a variable reference; write ${{NAME}}",
            )
        if name not in env:
            raise ScheduleError(
                expression, f"environment variable {name} is not set (used as ${{{name}}})"
            )
        parts.append(env[name])
        position = end + 1
    parts.append(text[position:])
    return "".join(parts).strip()


def _split(text: str, fail: Callable[[str], ScheduleError]) -> tuple[tuple[str, ...], bool]:
    """The 6 normalised fields of an expression or alias, and whether seconds were written."""
    if text.startswith("@"):
        key = text.lower()
        if key == "@reboot":
            raise fail("@reboot is not a schedule; give the job a startup trigger instead")
        if key not in SCHEDULE_ALIASES:
            known = ", ".join(SCHEDULE_ALIASES)
            raise fail(f"unknown alias {text!r}; the aliases are {known}")
        return ("0", *SCHEDULE_ALIASES[key].split()), False
    fields = tuple(text.split())
    if len(fields) == 5:
        return ("0", *fields), False
    if len(fields) == 6:
        return fields, True
    if len(fields) == 7:
        raise fail(
            "7 fields: a year field is not supported; write 5 fields (minute hour"
            f" day-of-month month day-of-week) or 6 with seconds first ({_SIX_FIELDS})"
        )
    raise fail(
        f"{len(fields)} field{'s' if len(fields) != 1 else ''}; a schedule has 5 fields"
        f" (minute hour day-of-month month day-of-week) or 6 with seconds first ({_SIX_FIELDS})"
    )


def _explain(fields: tuple[str, ...], has_seconds: bool, error: FieldError) -> str:
    """The reason to report; spots 6 fields that were written seconds LAST (croniter-style)."""
    if not has_seconds:
        return error.message
    seconds_first = (fields[5], *fields[:5])
    try:
        _compile(seconds_first)
    except FieldError:
        return error.message
    return (
        f"6 fields are read with seconds FIRST ({_SIX_FIELDS}), and read that way"
        f" {error.message}; they look like seconds LAST (croniter's default) --"
        f" write {' '.join(seconds_first)!r}"
    )


def _zone_names() -> set[str]:
    try:
        return zoneinfo.available_timezones()
    except (OSError, ValueError):  # pragma: no cover - an unreadable database
        return set()


def _similar_zones(name: str, known: set[str]) -> list[str]:
    wanted = name.strip().replace(" ", "_").lower()
    same = [key for key in known if key.lower() == wanted]
    if same:
        return same
    city = wanted.rsplit("/", 1)[-1]
    return sorted(key for key in known if key.lower().rsplit("/", 1)[-1] == city)[:3]
