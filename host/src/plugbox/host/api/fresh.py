"""Answers rendered once and served again while they are fresh (docs/adr/0031-serving-under-load.md).

``GET /jobs`` combines every job's manifest, schedule (its next fire), pause state and stored
tally; a page of 100 costs a few milliseconds of CPU however short the history, and dashboards
and scripts ask for the same page over and over. :class:`Fresh` keeps each rendered body for at
most ``max_age_s`` seconds, and drops it as soon as this process changes something it shows
(:meth:`Fresh.changed`): a run of a job it lists was triggered or ended, or anything that may
change which jobs a list holds (a pause or resume: ``?state=paused``). Changes made by other
processes (a ``plugbox jobs run`` in a shell) show within ``max_age_s``.

Concurrent requests for a body being rendered wait for that one render instead of each doing
their own, so a burst costs one render, not fifty.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

#: How many distinct bodies (filters, pages) are kept; the oldest is dropped first.
MAX_ENTRIES = 64


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    began: int = -1  # the change count when its render began; -1: never rendered
    at: float = 0.0
    body: bytes = b""
    covers: frozenset[str] = frozenset()


class Fresh:
    """Rendered bodies by key, each valid for ``max_age_s`` seconds and until :meth:`changed`."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._changes = 0  # numbers every change, so a body knows which came after its render
        self._everything_at = -1  # the number of the latest change to every body
        self._job_at: dict[str, int] = {}  # per job, the number of its latest change
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def changed(self, job: str | None = None) -> None:
        """``job`` changed (``None``: anything may have): the bodies listing it are rendered
        again when next asked."""
        with self._lock:
            if job is None:
                self._everything_at = self._changes
            else:
                self._job_at[job] = self._changes
            self._changes += 1

    def peek(self, key: Hashable) -> bytes | None:
        """The body for ``key`` if one is fresh, without waiting (safe on the event loop)."""
        entry = self._entries.get(key)
        if entry is None or not self._is_fresh(entry):
            return None
        return entry.body

    def get(self, key: Hashable, render: Callable[[], tuple[bytes, frozenset[str]]]) -> bytes:
        """The fresh body for ``key``, rendering it (once, whoever else asks meanwhile) if
        there is none; ``render`` answers the body and the jobs it lists. Blocking: call it
        from a worker thread."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
        with entry.lock:
            if not self._is_fresh(entry):
                began = self._changes  # read before rendering: a change meanwhile counts
                entry.body, entry.covers = render()
                entry.at, entry.began = self._clock(), began
            return entry.body

    def _is_fresh(self, entry: _Entry) -> bool:
        if entry.began < 0 or self._clock() - entry.at >= self.max_age_s:
            return False
        if self._everything_at >= entry.began:
            return False
        job_at = self._job_at
        return all(job_at.get(job, -1) < entry.began for job in entry.covers)
