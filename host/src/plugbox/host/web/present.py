"""How values read on the page: times relative to now with the exact time beside, durations,
percentages, and the colour family of each status. Jinja filters, pure functions of their input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

#: The colour family of each run status and job state; the stylesheet colours ``tone-*``.
TONES = {
    "success": "good",
    "enabled": "good",
    "kernel": "good",
    "failed": "bad",
    "timeout": "bad",
    "killed": "bad",
    "advisory": "bad",
    "interrupted": "warn",
    "paused": "warn",
    "best-effort": "warn",
    "running": "busy",
    "queued": "busy",
    "skipped": "quiet",
    "cancelled": "quiet",
    "disabled": "quiet",
}


def tone(word: str | None) -> str:
    return TONES.get(word or "", "quiet")


def _span(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3_600:
        return f"{whole // 60} min"
    if whole < 86_400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{whole // 86_400} d"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``12 s ago``, ``in 3 min``, ``just now``: what an operator reads at a glance."""
    if when is None:
        return "—"
    delta = ((now or datetime.now(UTC)) - when).total_seconds()
    if abs(delta) < 1:
        return "just now"
    return f"{_span(delta)} ago" if delta > 0 else f"in {_span(-delta)}"


def exact(when: datetime | None) -> str:
    """The instant in UTC to the second, for the hover text beside a relative time."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def from_epoch(seconds: float) -> datetime:
    """Log entries and events carry Unix times; the page shows them like every other time."""
    return datetime.fromtimestamp(seconds, UTC)


def duration(ms: int | float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1_000:
        return f"{int(ms)} ms"
    if ms < 60_000:
        return f"{ms / 1_000:.1f} s"
    return _span(ms / 1_000)


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f} %"


def as_json(value: Any) -> str:
    """Pretty JSON for results, event data and permissions (escaped by the template, as text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


FILTERS = {
    "tone": tone,
    "ago": ago,
    "exact": exact,
    "from_epoch": from_epoch,
    "duration": duration,
    "percent": percent,
    "as_json": as_json,
}
