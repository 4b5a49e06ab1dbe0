"""Where the scheduler gets "now": the real clock, and a fake one that tests move by hand.

Every instant crossing this interface is timezone-aware UTC. The scheduler never sleeps and
never reads the system clock itself, so a test can walk it through a DST week or a three-day
outage in microseconds by moving a :class:`FakeClock`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from plugbox.sdk.schedules import as_utc

__all__ = ["Clock", "FakeClock", "OffsetClock", "SystemClock"]


class Clock(Protocol):
    """A source of the current instant."""

    def now(self) -> datetime:
        """The current instant as an aware UTC datetime."""
        ...


class SystemClock:
    """The machine's clock (``datetime.now(UTC)``)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that stands still until a test moves it.

    ``advance`` moves forward only; ``set`` may also move backwards, to simulate the wall clock
    being stepped back (NTP, an operator fixing the time).
    """

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start, "start")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError(f"advance() moves forward only, got {delta}; use set() to go back")
        self._now += delta
        return self._now

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (aware; any zone) and return it as UTC."""
        self._now = as_utc(instant, "instant")
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"


class OffsetClock:
    """Another clock, ``offset`` ahead (or behind, if negative): a replica whose clock is off.

    For tests of several replicas: the scheduler of one runs on a skewed clock while the database
    decides what is due (:mod:`plugbox.host.store.queue`).
    """

    def __init__(self, offset: timedelta, base: Clock | None = None) -> None:
        self.offset = offset
        self._base = SystemClock() if base is None else base

    def now(self) -> datetime:
        return self._base.now() + self.offset

    def __repr__(self) -> str:
        return f"OffsetClock({self.offset!r})"
