"""Pre-forked children kept ready per job, as many as the job's runs have been in flight at once.

A run whose job has a warm child — forked, confined and in its cgroup, waiting for its go — skips
the fork on its trigger -> outcome path. One warm child per job served a job that runs one at a
time; when two runs of one job overlap (a burst of triggers, the host's worker pool catching up),
the second found none and waited for a fork or made its own. The pool therefore keeps, per job,
as many children as the most runs of that job seen in flight at once, plus one more each time a
run still found none ready although the pool was that big (runs coming back to back, faster than
a child is forked after each), at most ``max_per_key``; and at most ``max_total`` over every job,
evicting the children of the job that was used least recently. A job whose runs find a child
ready ``decay_after`` times in a row wants one fewer (ADR 0036).

Only bookkeeping lives here; forking and discarding children is the runner's. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Generic, TypeVar

__all__ = ["WarmPool"]

T = TypeVar("T")

#: Jobs whose wanted size is remembered; the least recently sized idle ones are forgotten first.
MAX_KNOWN_KEYS = 256


class WarmPool(Generic[T]):
    """Warm children by job key, and how many each key wants."""

    def __init__(self, max_total: int, max_per_key: int, decay_after: int = 64) -> None:
        self._max_total = max_total
        self._max_per_key = max_per_key
        self._decay_after = decay_after
        self._hits: Counter[str] = Counter()
        self._cond = threading.Condition()
        # Keys in the order they were last given a child: the first is evicted first.
        self._ready: dict[str, deque[T]] = {}
        self._warming: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._want: dict[str, int] = {}
        self._closed = False

    def take(self, key: str, wait_s: float) -> T | None:
        """A warm child for a run of ``key``, or ``None`` (the run forks its own).

        Counts the run as in flight until :meth:`finished`. When none is ready but one is being
        forked that no earlier waiter will take, waits up to ``wait_s`` for it: the fork is
        already under way, and waiting beats a second one.
        """
        with self._cond:
            self._in_flight[key] += 1
            self._size(key)
            deadline = time.monotonic() + wait_s
            while True:
                ready = self._ready.get(key)
                if ready:
                    child = ready.popleft()
                    if not ready:
                        del self._ready[key]
                    return child
                left = deadline - time.monotonic()
                if self._closed or left <= 0 or self._warming[key] <= self._waiting[key]:
                    return None
                self._waiting[key] += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._waiting[key] -= 1
                    if self._waiting[key] <= 0:
                        del self._waiting[key]

    def _size(self, key: str) -> None:
        """Adjust how many children ``key`` wants, as a run of it is about to take one."""
        in_flight = self._in_flight[key]
        want = self._want.get(key)
        if want is None:  # its first run: nothing could have been ready
            self._want[key] = 1
            self._forget_idle_keys()
            return
        if self._ready.get(key):
            self._hits[key] += 1
            if self._hits[key] >= self._decay_after:
                self._hits[key] = 0
                self._want[key] = max(1, want - 1)
            return
        self._hits[key] = 0
        # None ready: too few for the runs in flight, or refilled too late for this one.
        grown = in_flight if want < in_flight else want + 1
        self._want[key] = min(self._max_per_key, grown)

    def _forget_idle_keys(self) -> None:
        """Bound what is remembered per job: a host whose jobs change makes new keys for ever."""
        for old in list(self._want):
            if len(self._want) <= MAX_KNOWN_KEYS:
                return
            if old not in self._ready and not self._warming[old] and not self._in_flight[old]:
                del self._want[old]
                self._hits.pop(old, None)

    def finished(self, key: str) -> None:
        """A run of ``key`` counted by :meth:`take` is over."""
        with self._cond:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def start_warming(self, key: str) -> bool:
        """Whether ``key`` wants another child; if so it is counted as being forked until
        :meth:`warmed` (which must follow)."""
        with self._cond:
            have = len(self._ready.get(key, ())) + self._warming[key]
            if self._closed or have >= self._want.get(key, 1):
                return False
            self._warming[key] += 1
            return True

    def warmed(self, key: str, child: T | None) -> list[T]:
        """The fork counted by :meth:`start_warming` is done (``child``, or ``None`` if it failed).

        Returns the children that no longer fit (the caller discards them).
        """
        with self._cond:
            self._warming[key] -= 1
            if self._warming[key] <= 0:
                del self._warming[key]
            evicted: list[T] = []
            if child is not None:
                if self._closed:
                    evicted.append(child)
                else:
                    ready = self._ready.pop(key, None) or deque()
                    ready.append(child)
                    self._ready[key] = ready  # now the most recently used key
                    evicted.extend(self._trim())
            self._cond.notify_all()
            return evicted

    def close(self) -> list[T]:
        """Stop keeping children; returns every warm child (the caller discards them)."""
        with self._cond:
            self._closed = True
            children = [child for ready in self._ready.values() for child in ready]
            self._ready.clear()
            self._cond.notify_all()
            return children

    def _trim(self) -> list[T]:
        """Evict the least recently used keys' oldest children down to ``max_total``."""
        evicted: list[T] = []
        total = sum(len(ready) for ready in self._ready.values())
        while total > self._max_total:
            oldest = next(iter(self._ready))
            ready = self._ready[oldest]
            evicted.append(ready.popleft())
            if not ready:
                del self._ready[oldest]
            total -= 1
        return evicted
