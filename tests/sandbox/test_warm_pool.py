"""Warm children: as many per job as its runs have been in flight at once, bounded, never shared."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner
from plugbox.sandbox.warm_pool import MAX_KNOWN_KEYS, WarmPool

JOBS_DIR = str(Path(__file__).parent / "jobs")


def _zygotes() -> set[int]:
    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if _name(child) == "plugbox-zygote"
    }


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return ""


def _waiting_run_children(zygote: int) -> set[int]:
    """Pids of the zygote's live ``plugbox-run`` descendants (a zombie is not waiting)."""
    found = set()
    for child in psutil.Process(zygote).children(recursive=True):
        try:
            if child.name() == "plugbox-run" and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _settled_waiting_children(zygote: int, want: int) -> set[int]:
    """The run children that stay alive across two looks once ``want`` of them are there.

    A run's own child is killed before its outcome returns but may take a moment to exit; one
    that is alive on both looks, after the runs ended, is a warm child waiting for a go.
    """
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        first = _waiting_run_children(zygote)
        if len(first) >= want:
            time.sleep(0.2)
            steady = first & _waiting_run_children(zygote)
            if len(steady) >= want:
                return steady
        time.sleep(0.02)
    return _waiting_run_children(zygote)


def test_a_job_run_twice_at_once_keeps_two_children_ready(tmp_path: Path) -> None:
    request = RunRequest(
        handler="plugbox_deadline_jobs:nap",
        workspace=str(tmp_path),
        context=RunContext(
            job_id="nap", plugin_id="t", plugin_version="0", run_id="", config={"seconds": 0.5}
        ),
        python_path=(JOBS_DIR,),
    )
    others = _zygotes()  # other tests' runners keep warm children of their own
    with SandboxRunner() as runner, ThreadPoolExecutor(2) as pool:
        (zygote,) = _zygotes() - others
        assert runner.run(request).status == "success"
        assert len(_settled_waiting_children(zygote, 1)) == 1  # one at a time: one warm child
        outcomes = list(pool.map(lambda _: runner.run(request), range(2)))
        assert [o.status for o in outcomes] == ["success", "success"], outcomes
        ready = _settled_waiting_children(zygote, 2)
        assert len(ready) == 2
        # Each warm child serves one run: both end with the runs they were handed to.
        outcomes = list(pool.map(lambda _: runner.run(request), range(2)))
        assert [o.status for o in outcomes] == ["success", "success"], outcomes
        deadline = time.monotonic() + 20
        while ready & _waiting_run_children(zygote) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not ready & _waiting_run_children(zygote)


def test_the_pool_keeps_as_many_children_as_runs_were_in_flight() -> None:
    pool: WarmPool[str] = WarmPool(max_total=8, max_per_key=3)
    assert pool.start_warming("a")  # a job never run wants one
    assert pool.warmed("a", "a1") == []
    assert not pool.start_warming("a")
    for _ in range(5):  # five at once: the pool grows to its per-job bound
        pool.take("a", 0)
    for _ in range(5):
        pool.finished("a")
    forked = 0
    while pool.start_warming("a"):
        pool.warmed("a", f"a{forked}")
        forked += 1
    assert forked == 3


def test_the_least_recently_warmed_job_gives_way_past_the_total() -> None:
    pool: WarmPool[str] = WarmPool(max_total=2, max_per_key=2)
    for key in ("old", "new"):
        assert pool.start_warming(key)
        assert pool.warmed(key, f"{key}-child") == []
    assert pool.start_warming("third")
    assert pool.warmed("third", "third-child") == ["old-child"]
    assert pool.take("old", 0) is None
    pool.finished("old")
    assert sorted(pool.close()) == ["new-child", "third-child"]
    assert not pool.start_warming("new")  # closed: nothing more is kept
    assert pool.take("new", 0) is None


def test_a_run_waits_for_a_child_being_forked_but_not_for_one_promised_to_another() -> None:
    pool: WarmPool[str] = WarmPool(max_total=8, max_per_key=2)
    assert pool.start_warming("a")
    got: list[str | None] = []
    first = threading.Thread(target=lambda: got.append(pool.take("a", 30)))
    first.start()
    deadline = time.monotonic() + 10
    while pool._waiting["a"] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    # The one fork under way is the first waiter's: a second run does not queue behind it.
    started = time.monotonic()
    assert pool.take("a", 30) is None
    assert time.monotonic() - started < 20
    pool.warmed("a", "child")
    first.join(10)
    assert got == ["child"]


def _refill(pool: WarmPool[str], key: str) -> int:
    forked = 0
    while pool.start_warming(key):
        pool.warmed(key, f"{key}{forked}")
        forked += 1
    return forked


def _run_once(pool: WarmPool[str], key: str) -> str | None:
    child = pool.take(key, 0)
    pool.finished(key)
    return child


def test_runs_back_to_back_get_a_spare_child_and_steady_hits_give_it_back() -> None:
    pool: WarmPool[str] = WarmPool(max_total=8, max_per_key=4, decay_after=2)
    assert _run_once(pool, "a") is None  # the first run: nothing could be ready
    assert _refill(pool, "a") == 1
    assert _run_once(pool, "a") is not None
    assert _run_once(pool, "a") is None  # came back before its child was forked: one more
    assert _refill(pool, "a") == 2
    assert _run_once(pool, "a") is not None
    assert _run_once(pool, "a") is not None  # two in a row found one ready: one fewer wanted
    assert _refill(pool, "a") == 1
    assert _run_once(pool, "a") is not None
    assert _refill(pool, "a") == 1


def test_what_a_job_wanted_is_forgotten_once_many_other_jobs_ran() -> None:
    pool: WarmPool[str] = WarmPool(max_total=8, max_per_key=4)
    pool.take("busy", 0)
    pool.take("busy", 0)  # two at once: it wants two
    pool.finished("busy")
    pool.finished("busy")
    for n in range(MAX_KNOWN_KEYS):  # jobs that come and go (a host whose configs change)
        _run_once(pool, f"job-{n}")
    assert _refill(pool, "busy") == 1
