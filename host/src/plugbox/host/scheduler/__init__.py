"""The pure core of the host's scheduler: timing and policy decisions, driven by a clock.

Nothing in this package starts a thread or a process or does I/O: the host asks a
:class:`Plan` what is due and when to wake up, and asks :mod:`.policy` what to do with a fire.
"""

from plugbox.host.scheduler.clock import Clock, FakeClock, SystemClock
from plugbox.host.scheduler.plan import Fire, Plan, ScheduledJob, Trigger
from plugbox.host.scheduler.policy import (
    ConcurrencyDecision,
    backoff_ms,
    concurrency_decision,
    latest_fires,
    missed_fires,
)

__all__ = [
    "Clock",
    "ConcurrencyDecision",
    "FakeClock",
    "Fire",
    "Plan",
    "ScheduledJob",
    "SystemClock",
    "Trigger",
    "backoff_ms",
    "concurrency_decision",
    "latest_fires",
    "missed_fires",
]
