"""Rendered GET /jobs bodies: served again while fresh, rendered once for a crowd, dropped on a
change (plugbox.host.api.fresh)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from plugbox.host.api.fresh import MAX_ENTRIES, Fresh


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting() -> tuple[list[int], Callable[[], bytes]]:
    renders: list[int] = []

    def render() -> bytes:
        renders.append(1)
        return f"body {len(renders)}".encode()

    return renders, render


def test_a_body_is_served_again_until_it_is_too_old_or_something_changed() -> None:
    clock = Clock()
    fresh = Fresh(1.0, clock=clock)
    renders, render = counting()
    assert fresh.peek("jobs") is None
    assert fresh.get("jobs", render) == b"body 1"
    clock.now += 0.9
    assert fresh.peek("jobs") == fresh.get("jobs", render) == b"body 1"
    clock.now += 0.2
    assert fresh.peek("jobs") is None
    assert fresh.get("jobs", render) == b"body 2"
    fresh.changed()
    assert fresh.peek("jobs") is None
    assert fresh.get("jobs", render) == b"body 3"
    assert len(renders) == 3


def test_a_change_during_a_render_is_not_hidden_by_it() -> None:
    fresh = Fresh(60.0, clock=Clock())

    def render_while_a_run_ends() -> bytes:
        fresh.changed()  # a run ended after this render read the store
        return b"stale"

    assert fresh.get("jobs", render_while_a_run_ends) == b"stale"
    assert fresh.peek("jobs") is None


def test_a_crowd_asking_at_once_waits_for_one_render() -> None:
    fresh = Fresh(60.0, clock=Clock())
    started, release = threading.Event(), threading.Event()
    renders: list[int] = []

    def slow() -> bytes:
        renders.append(1)
        started.set()
        release.wait(30)
        return b"body"

    answers: list[bytes] = []
    first = threading.Thread(target=lambda: answers.append(fresh.get("jobs", slow)))
    first.start()
    assert started.wait(30)
    crowd = [
        threading.Thread(target=lambda: answers.append(fresh.get("jobs", slow))) for _ in range(8)
    ]
    for thread in crowd:
        thread.start()
    release.set()
    for thread in (first, *crowd):
        thread.join(30)
    assert answers == [b"body"] * 9 and len(renders) == 1


def test_only_so_many_bodies_are_kept() -> None:
    fresh = Fresh(60.0, clock=Clock())
    for page in range(MAX_ENTRIES + 1):
        fresh.get(page, lambda: b"page")
    assert fresh.peek(0) is None and fresh.peek(MAX_ENTRIES) == b"page"
