"""Identical reads asked at once share one render, and never one begun before they were asked
(docs/adr/0038-shared-renders.md).

Fifty clients polling ``GET /runs?limit=50`` each cost a store read and a page of records
(≈ 10 ms of CPU, under one GIL with the scheduler): the fiftieth waited for the forty-nine
before it. :class:`Coalesce` lets every request for the same key that arrives while a render
of that key is *waiting to start* share it. A request arriving while a render is already
running does not take that render's answer — it began before the request, and may miss a
write the client has just made (a trigger, then a read of the run) — but waits for the next
one, which begins after it arrived and which everyone arriving meanwhile shares. So no answer
is older than its request, and a burst of N identical requests costs about two renders, not N.

It runs on the event loop (no thread waits for another's render); the render itself is
awaited, so it is free to send its blocking work to the thread pool once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class _Slot:
    running: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The render that has not begun yet: requests arriving now share it.
    next: asyncio.Future[bytes] | None = None
    renders: int = 0  # renders scheduled and not yet ended; the slot goes with the last


class Coalesce:
    """Renders by key, shared by the requests waiting for them (see the module)."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    async def get(self, key: Hashable, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """The body ``render`` answers for ``key`` in a render that began after this call;
        its exception, if it raises, for every request that shared it."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.next is None:
            slot.next = asyncio.get_running_loop().create_future()
            slot.renders += 1
            # A task of its own, not this request's: a client that hangs up must not cancel
            # the render the others are waiting for.
            task = asyncio.create_task(self._render(key, slot, slot.next, render))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(slot.next)

    async def _render(
        self,
        key: Hashable,
        slot: _Slot,
        answer: asyncio.Future[bytes],
        render: Callable[[], Awaitable[bytes]],
    ) -> None:
        try:
            async with slot.running:
                slot.next = None  # from now on, arrivals wait for a later render
                try:
                    answer.set_result(await render())
                except asyncio.CancelledError:  # the loop is closing
                    answer.cancel()
                    raise
                except Exception as err:  # handed to every request that shared the render
                    answer.set_exception(err)
                    answer.exception()  # marked retrieved: maybe nobody is left to read it
        finally:
            slot.renders -= 1
            if slot.renders == 0:
                del self._slots[key]
