"""Durations as authors write them (``"10s"``, ``"1m30s"``, ``1500``) turned into whole milliseconds.

Milliseconds are the one unit stored anywhere in plugbox (``timeout_ms``, ``cpu_ms``), so every
option that takes a duration goes through :func:`parse_duration_ms` and nothing else converts units.
A bare number is milliseconds, matching the quota fields; a float string is refused rather than
rounded so ``"0.5"`` cannot silently mean half a millisecond.
"""

from __future__ import annotations

import re
from datetime import timedelta

from plugbox.sdk.errors import DurationError

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")

#: Longest duration accepted anywhere (30 days): larger values are almost always a unit mistake.
MAX_DURATION_MS = 30 * 86_400_000


def parse_duration_ms(value: str | int | float | timedelta) -> int:
    """Return ``value`` as whole milliseconds; raise :class:`DurationError` saying how to write it."""
    if isinstance(value, bool):
        raise DurationError(value, "a duration must be a number of milliseconds or text like '10s'")
    if isinstance(value, timedelta):
        ms = value / timedelta(milliseconds=1)
    elif isinstance(value, int | float):
        ms = float(value)
    elif isinstance(value, str):
        ms = _parse_text(value)
    else:
        raise DurationError(value, "a duration must be a number of milliseconds or text like '10s'")
    if ms != ms or ms < 0:  # NaN or negative
        raise DurationError(value, "a duration cannot be negative")
    if ms > MAX_DURATION_MS:
        raise DurationError(value, "longer than 30 days; check the unit (a bare number is ms)")
    if ms != int(ms):
        raise DurationError(value, "durations are whole milliseconds")
    return int(ms)


def _parse_text(text: str) -> float:
    compact = text.strip().lower().replace(" ", "")
    if compact.isdigit():
        return float(compact)
    if not compact or not _WHOLE.fullmatch(compact):
        raise DurationError(
            text,
            "write a number of milliseconds or amounts with units: '500ms', '10s', '5m', '1h30m'",
        )
    return sum(float(amount) * _UNIT_MS[unit] for amount, unit in _PART.findall(compact))


def format_duration_ms(ms: int) -> str:
    """Render milliseconds the way an author would write them (``90000`` -> ``"1m30s"``)."""
    if ms == 0:
        return "0s"
    parts: list[str] = []
    rest = ms
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_MS[unit]
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
