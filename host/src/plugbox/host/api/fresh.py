"""Answers rendered once and served again while they are fresh (docs/adr/0031-serving-under-load.md).

``GET /jobs`` combines every job's manifest, schedule (its next fire), pause state and stored
tally; a page of 100 costs a few milliseconds of CPU however short the history, and dashboards
and scripts ask for the same page over and over. :class:`Fresh` keeps each rendered body for at
most ``max_age_s`` seconds and drops them all when this process changes something they show
(:meth:`Fresh.changed`: a run finished, a trigger, a pause). Changes made by other processes (a
``plugbox jobs run`` in a shell) show within ``max_age_s``.

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
    generation: int = -1
    at: float = 0.0
    body: bytes = b""


class Fresh:
    """Rendered bodies by key, each valid for ``max_age_s`` seconds and until :meth:`changed`."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._generation = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def changed(self) -> None:
        """Something every body may show has changed: render each again when next asked."""
        with self._lock:
            self._generation += 1

    def peek(self, key: Hashable) -> bytes | None:
        """The body for ``key`` if one is fresh, without waiting (safe on the event loop)."""
        entry = self._entries.get(key)
        if entry is None or not self._is_fresh(entry):
            return None
        return entry.body

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The fresh body for ``key``, rendering it (once, whoever else asks meanwhile) if
        there is none. Blocking: call it from a worker thread."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
        with entry.lock:
            if not self._is_fresh(entry):
                generation = self._generation  # before rendering: a change meanwhile counts
                entry.body = render()
                entry.at, entry.generation = self._clock(), generation
            return entry.body

    def _is_fresh(self, entry: _Entry) -> bool:
        return entry.generation == self._generation and (self._clock() - entry.at < self.max_age_s)
