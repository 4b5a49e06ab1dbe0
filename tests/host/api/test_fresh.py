"""Rendered GET /jobs bodies: served again while fresh, rendered once for a crowd, dropped when
a job they list changes (plugbox.host.api.fresh)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from plugbox.host.api.fresh import MAX_ENTRIES, Fresh

Render = Callable[[], tuple[bytes, frozenset[str]]]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(*jobs: str) -> tuple[list[int], Render]:
    """A render listing ``jobs`` whose body says how many renders there were."""
    renders: list[int] = []

    def render() -> tuple[bytes, frozenset[str]]:
        renders.append(1)
        return f"body {len(renders)}".encode(), frozenset(jobs)

    return renders, render


def test_a_body_is_served_again_until_it_is_too_old() -> None:
    clock = Clock()
    fresh = Fresh(1.0, clock=clock)
    renders, render = counting("p:a")
    assert fresh.peek("jobs") is None
    assert fresh.get("jobs", render) == b"body 1"
    clock.now += 0.9
    assert fresh.peek("jobs") == fresh.get("jobs", render) == b"body 1"
    clock.now += 0.2
    assert fresh.peek("jobs") is None
    assert fresh.get("jobs", render) == b"body 2"
    assert len(renders) == 2


def test_a_change_drops_the_bodies_listing_its_job_and_no_other() -> None:
    fresh = Fresh(60.0, clock=Clock())
    _, lists_a = counting("p:a", "p:b")
    _, lists_c = counting("p:c")
    fresh.get("a", lists_a)
    fresh.get("c", lists_c)
    fresh.changed("p:b")
    assert fresh.peek("a") is None and fresh.peek("c") == b"body 1"
    assert fresh.get("a", lists_a) == b"body 2"
    fresh.changed()  # which jobs a list holds may have changed (a pause): every body goes
    assert fresh.peek("a") is fresh.peek("c") is None


def test_a_change_during_a_render_is_not_hidden_by_it() -> None:
    fresh = Fresh(60.0, clock=Clock())

    def render_while_a_run_ends() -> tuple[bytes, frozenset[str]]:
        fresh.changed("p:a")  # the run ended after this render read the store
        return b"stale", frozenset({"p:a"})

    assert fresh.get("jobs", render_while_a_run_ends) == b"stale"
    assert fresh.peek("jobs") is None


def test_a_crowd_asking_at_once_waits_for_one_render() -> None:
    fresh = Fresh(60.0, clock=Clock())
    started, release = threading.Event(), threading.Event()
    renders: list[int] = []

    def slow() -> tuple[bytes, frozenset[str]]:
        renders.append(1)
        started.set()
        release.wait(30)
        return b"body", frozenset()

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
        fresh.get(page, lambda: (b"page", frozenset()))
    assert fresh.peek(0) is None and fresh.peek(MAX_ENTRIES) == b"page"
