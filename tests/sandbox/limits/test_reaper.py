"""Ending a run without a cgroup: subreapers, the stop-then-kill tree walk, orphans, daemons."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from plugbox.sandbox.limits import become_subreaper, is_subreaper, kill_orphans, kill_tree

if TYPE_CHECKING:
    from .conftest import Forked

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="subreapers are Linux-only"
)


def _daemonize(marker: Path) -> None:
    """Fork, ``setsid``, fork again, let the middle process exit: the classic daemon escape."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            marker.write_text(f"{os.getpid()}\n")
            time.sleep(60)
        os._exit(0)


def _session_members(session: int) -> list[int]:
    """Live processes of a session (fine for processes that do not hop pids)."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getsid(proc.pid) == session and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except OSError:
            continue
    return found


def test_become_subreaper_marks_only_the_caller(forked: Forked) -> None:
    def child() -> list[bool]:
        before = is_subreaper()
        became = become_subreaper()
        return [before, became, is_subreaper()]

    assert forked(child).result == [False, True, True]
    assert not is_subreaper()


def test_orphans_are_adopted_by_the_subreaper(forked: Forked) -> None:
    def zygote() -> dict[str, int]:
        become_subreaper()
        read_end, write_end = os.pipe()
        middle = os.fork()
        if middle == 0:
            if os.fork() == 0:
                time.sleep(0.2)  # let the middle process exit first
                os.write(write_end, str(os.getppid()).encode())
                os._exit(0)
            os._exit(0)
        os.waitpid(middle, 0)
        adopted_by = int(os.read(read_end, 32))
        os.wait()
        return {"adopted_by": adopted_by, "me": os.getpid()}

    result = forked(zygote).result
    assert result["adopted_by"] == result["me"]


def test_kill_tree_kills_the_root_and_every_descendant(
    forked: Forked, gone: Callable[..., bool]
) -> None:
    read_end, write_end = os.pipe()

    def root() -> None:
        for _ in range(2):  # two children, each with two children of its own
            if os.fork() == 0:
                for _ in range(2):
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                os.write(write_end, b"..")
                time.sleep(30)
                os._exit(0)
        time.sleep(30)

    started = forked.start(root)
    ready = b""
    while len(ready) < 4:  # both subtrees are up
        ready += os.read(read_end, 4)
    tree = [started.pid] + [p.pid for p in psutil.Process(started.pid).children(recursive=True)]
    assert len(tree) == 7
    assert kill_tree(started.pid) == 7
    assert all(gone(pid) for pid in tree)
    assert started.wait().signal == signal.SIGKILL


def test_kill_tree_finds_session_members_that_left_the_tree(
    forked: Forked, tmp_path: Path, gone: Callable[..., bool], wait_for_file: Callable[..., str]
) -> None:
    """A grandchild whose parent exited is re-parented out of the tree, but keeps the session."""
    marker = tmp_path / "orphan.pid"

    def root() -> None:
        os.setsid()
        if os.fork() == 0:
            if os.fork() == 0:
                marker.write_text(f"{os.getpid()}\n")
                time.sleep(30)
            os._exit(0)
        time.sleep(30)

    started = forked.start(root)
    orphan = int(wait_for_file(str(marker)))
    # The marker is written while its parent may still be exiting: wait for the re-parenting.
    deadline = time.monotonic() + 5
    while orphan in [p.pid for p in psutil.Process(started.pid).children(recursive=True)]:
        assert time.monotonic() < deadline, "the grandchild was never re-parented"
        time.sleep(0.01)
    assert kill_tree(started.pid, session_id=started.pid) == 2
    assert gone(orphan)


def test_a_subreaper_run_root_keeps_its_daemons_in_the_tree(
    forked: Forked, tmp_path: Path, gone: Callable[..., bool], wait_for_file: Callable[..., str]
) -> None:
    """When the run's root is a subreaper, a setsid double-forked daemon is re-parented to the root
    itself, so the tree walk alone finds it."""
    marker = tmp_path / "daemon.pid"

    def root() -> None:
        become_subreaper()
        _daemonize(marker)
        time.sleep(30)

    started = forked.start(root)
    daemon = int(wait_for_file(str(marker)))
    deadline = time.monotonic() + 2
    while psutil.Process(daemon).ppid() != started.pid:  # the middle process is exiting
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert os.getsid(daemon) != started.pid
    assert kill_tree(started.pid, session_id=started.pid) == 2
    assert gone(daemon)


def test_the_fallback_path_kills_a_setsid_daemon_through_the_subreaper_zygote(
    forked: Forked, tmp_path: Path, gone: Callable[..., bool], wait_for_file: Callable[..., str]
) -> None:
    """No cgroup. A zygote (subreaper) forks a run; the run leaves a setsid double-forked daemon.
    The tree walk cannot see it (documented: it is in another session and was adopted by the
    zygote) — ``kill_orphans`` in the zygote is what ends it."""
    marker = tmp_path / "daemon.pid"

    def zygote() -> dict[str, Any]:
        become_subreaper()
        run = os.fork()
        if run == 0:
            os.setsid()
            _daemonize(marker)
            time.sleep(30)
            os._exit(0)
        daemon = int(wait_for_file(str(marker)))
        deadline = time.monotonic() + 2
        while psutil.Process(daemon).ppid() != os.getpid():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        report: dict[str, Any] = {"daemon": daemon}
        report["kill_tree"] = kill_tree(run, session_id=run)
        report["daemon_survived_kill_tree"] = not gone(daemon, 0)
        report["kill_orphans"] = kill_orphans(keep={run})
        report["daemon_survived_kill_orphans"] = not gone(daemon)
        os.waitpid(run, 0)
        return report

    report = forked(zygote).result
    assert report["kill_tree"] == 1
    assert report["daemon_survived_kill_tree"] is True
    assert report["kill_orphans"] == 1
    assert report["daemon_survived_kill_orphans"] is False
    assert gone(report["daemon"])


def test_kill_tree_wins_against_a_process_that_keeps_changing_its_pid(
    forked: Forked, tmp_path: Path
) -> None:
    """fork, parent exits, child carries on: the live process is never where the last scan of
    /proc saw it (it outruns the scan). The process-group SIGSTOP pins it where it stands."""
    beat = os.open(tmp_path / "beat", os.O_RDWR | os.O_CREAT)

    def hopper() -> None:
        os.setsid()
        for hop in range(20_000):  # bounded: a few seconds of hopping
            if os.fork() != 0:
                os._exit(0)
            os.pwrite(beat, f"{hop:08d}".encode(), 0)
        os._exit(0)

    def heartbeat() -> bytes:
        return os.pread(beat, 8, 0)

    started = forked.start(hopper)
    time.sleep(0.1)
    first = heartbeat()
    time.sleep(0.1)
    assert heartbeat() != first, "the hopper should be hopping"
    # 1 or more: each process caught mid-hop counts; under load the walk may catch several.
    assert kill_tree(started.pid, session_id=started.pid) >= 1
    stopped_at = heartbeat()
    time.sleep(0.3)
    assert heartbeat() == stopped_at, "the hopper survived"
    os.close(beat)
    started.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged uid needs root")
def test_kill_tree_wins_against_a_fork_storm(forked: Forked) -> None:
    """Every process forks as fast as it can (bounded by RLIMIT_NPROC under a fresh uid, since
    there is no pids cgroup on this path); the stop-then-kill loop still ends all of them."""
    uid = 2_100_000 + os.getpid() % 100_000

    def storm() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_NPROC, (40, 40))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.005)  # at the cap: retry, without starving the test of CPU

    started = forked.start(storm)
    session = started.pid
    try:
        deadline = time.monotonic() + 10
        while len(_session_members(session)) <= 10:  # under way (how fast depends on the load)
            assert time.monotonic() < deadline, "the fork storm never got going"
            time.sleep(0.01)
        killed = kill_tree(session, session_id=session)
        assert killed > 10
        assert _session_members(session) == []
        assert started.wait().signal == signal.SIGKILL
    finally:
        # Whatever failed above, no storm outlives the test (it would hold its uid's 40 slots).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(session, signal.SIGKILL)


def test_kill_tree_refuses_the_callers_own_session() -> None:
    with pytest.raises(ValueError, match="the caller is in it"):
        kill_tree(999_999_999, session_id=os.getsid(0))


def test_kill_tree_of_a_process_that_is_gone_kills_nothing(forked: Forked) -> None:
    ended = forked(lambda: None)
    assert kill_tree(ended.pid) == 0
