"""The pure core of the host's scheduler: timing decisions, driven by a clock.

Nothing in this package starts a thread or a process or does I/O: the host asks a
:class:`Plan` what is due and when to wake up. The small decisions about a fire (missed fires,
concurrency, retry backoff) are pure functions in :mod:`plugbox.sdk.firing`, shared with the
SDK's schedule preview so that what an author previews is what the host does.
"""

from plugbox.host.scheduler.clock import Clock, FakeClock, OffsetClock, SystemClock
from plugbox.host.scheduler.plan import Fire, Plan, ScheduledJob, Trigger

__all__ = [
    "Clock",
    "FakeClock",
    "Fire",
    "OffsetClock",
    "Plan",
    "ScheduledJob",
    "SystemClock",
    "Trigger",
]
