"""The run cgroup against real attacks: memory, tmpfs, fork and thread bombs, CPU across processes,
daemons, and the end of a run. Layout-sensitive tests run once per layout ("unified": hybrid v1+v2
here; "v1": the freezer/cpuacct path)."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import plugbox.sandbox.limits as limits
from plugbox.sandbox.limits import RunCgroup, TreeSampler, apply_rlimits, cgroup_support
from plugbox.sdk.permissions import Quotas

if TYPE_CHECKING:
    from .conftest import Forked

MIB = 1024 * 1024
MakeCgroup = Callable[..., RunCgroup]

pytestmark = pytest.mark.skipif(
    cgroup_support().version is None, reason=f"no cgroups here: {cgroup_support().detail}"
)


def test_public_surface() -> None:
    assert sorted(limits.__all__) == [
        "CgroupSupport",
        "RunCgroup",
        "TreeSampler",
        "TreeUsage",
        "address_space_limit",
        "apply_rlimits",
        "become_subreaper",
        "cgroup_support",
        "is_subreaper",
        "join_cgroup",
        "kill_orphans",
        "kill_tree",
    ]


def test_the_probe_says_what_works() -> None:
    support = cgroup_support()
    assert support.version in (1, 2)
    assert support.memory and support.pids and support.cpu and support.kill
    assert support.detail.startswith("cgroup ")


# -- memory ------------------------------------------------------------------------------------
def test_heap_bomb_is_oom_killed_at_the_limit(
    forked: Forked, make_cgroup: MakeCgroup, layout: str, safety_net: Callable[..., None]
) -> None:
    cgroup = make_cgroup(Quotas(memory_mb=64), layout)

    def bomb() -> str:
        cgroup.join()
        safety_net()
        chunks = [bytearray(MIB) for _ in range(200)]  # zero-filled: every page is touched
        return f"survived with {len(chunks)} MiB"

    ended = forked(bomb)
    assert ended.signal == signal.SIGKILL, ended.result
    assert cgroup.oom_killed()
    assert 56 <= cgroup.peak_memory_mb() <= 64.5


def test_heap_bomb_in_a_grandchild_is_stopped_too(
    forked: Forked, make_cgroup: MakeCgroup, safety_net: Callable[..., None]
) -> None:
    """The limit is on the tree: the OOM killer picks the bomb, the run's root survives to tell."""
    cgroup = make_cgroup(Quotas(memory_mb=64))

    def run() -> dict[str, Any]:
        cgroup.join()
        pid = os.fork()
        if pid == 0:
            safety_net()
            chunks = [bytearray(MIB) for _ in range(200)]
            os._exit(len(chunks) % 256)
        _, status = os.waitpid(pid, 0)
        return {"grandchild_signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}

    ended = forked(run)
    assert ended.exit_code == 0
    assert ended.result == {"grandchild_signal": signal.SIGKILL}
    assert cgroup.oom_killed()


def test_one_oversized_allocation_is_a_memory_error_not_an_oom_kill(
    forked: Forked, make_cgroup: MakeCgroup
) -> None:
    """rlimits + cgroup: a single huge allocation fails politely before touching a page."""
    cgroup = make_cgroup(Quotas(memory_mb=64))

    def allocate() -> str:
        cgroup.join()
        apply_rlimits(Quotas(memory_mb=64))
        try:
            bytearray(1024 * MIB)
        except MemoryError:
            return "MemoryError"
        return "allocated"

    ended = forked(allocate)
    assert ended.result == "MemoryError"
    assert not cgroup.oom_killed()


def test_tmpfs_bomb_is_charged_to_the_run_but_the_file_outlives_it(
    forked: Forked, make_cgroup: MakeCgroup
) -> None:
    """Pages written to /dev/shm count against the run's memory: the writer is OOM-killed at the
    limit. Documented limitation: the file stays, charged to the host, after the run is gone —
    Landlock keeping /dev/shm out of reach is what prevents it."""
    cgroup = make_cgroup(Quotas(memory_mb=64))
    path = Path(f"/dev/shm/plugbox-test-{uuid.uuid4().hex}")

    def bomb() -> str:
        cgroup.join()
        with open(path, "wb", buffering=0) as handle:
            for _ in range(200):  # bounded at 200 MiB if the limit failed
                handle.write(b"x" * MIB)
        return "survived"

    try:
        ended = forked(bomb)
        assert ended.signal == signal.SIGKILL
        assert cgroup.oom_killed()
        cgroup.close()
        assert 32 * MIB <= path.stat().st_size <= 64 * MIB  # still there after the run
    finally:
        path.unlink(missing_ok=True)


# -- processes ---------------------------------------------------------------------------------
def test_fork_bomb_is_capped_by_the_pids_limit(
    forked: Forked, make_cgroup: MakeCgroup, layout: str, gone: Callable[..., bool]
) -> None:
    cgroup = make_cgroup(Quotas(processes=20), layout)

    def bomb() -> dict[str, Any]:
        cgroup.join()
        children: list[int] = []
        try:
            while len(children) < 200:
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
        except OSError as err:
            return {"forked": len(children), "errno": err.errno, "children": children}
        return {"forked": len(children), "children": children}

    ended = forked(bomb)
    assert ended.result["forked"] == 19  # 20 tasks: the run's root and 19 more
    assert ended.result["errno"] == errno.EAGAIN
    assert cgroup.pids_limit_hit()
    assert len(cgroup.pids()) == 19  # orphaned, still in the run
    cgroup.kill_all()
    assert cgroup.pids() == []
    assert all(gone(pid) for pid in ended.result["children"])


def test_thread_bomb_is_capped_too(forked: Forked, make_cgroup: MakeCgroup) -> None:
    """Threads are tasks: pids.max counts them."""
    cgroup = make_cgroup(Quotas(processes=20))

    def bomb() -> dict[str, Any]:
        cgroup.join()
        release = threading.Event()
        started = 0
        error = ""
        try:
            while started < 200:
                threading.Thread(target=release.wait, daemon=True).start()
                started += 1
        except RuntimeError as err:
            error = str(err)
        release.set()
        return {"threads": started, "error": error}

    ended = forked(bomb)
    assert ended.result == {"threads": 19, "error": "can't start new thread"}
    assert cgroup.pids_limit_hit()


# -- CPU -----------------------------------------------------------------------------------------
def test_cpu_of_forked_spinners_is_summed_over_the_tree(
    forked: Forked, make_cgroup: MakeCgroup, layout: str
) -> None:
    """Each spinner dies at its own RLIMIT_CPU (1 s), but four of them used ~4 s together: the
    cgroup counts them all, exited ones included, so the watchdog can enforce the tree's quota."""
    quotas = Quotas(cpu_ms=500)
    cgroup = make_cgroup(quotas, layout)

    def spin_four() -> list[int | None]:
        cgroup.join()
        apply_rlimits(quotas)
        pids = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                while True:
                    pass
            pids.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in pids]
        return [os.WTERMSIG(s) if os.WIFSIGNALED(s) else None for s in statuses]

    ended = forked(spin_four, timeout=20)  # 4 s of CPU on however many cores are free
    assert ended.result == [signal.SIGXCPU] * 4
    single_process_cap_ms = 2000  # RLIMIT_CPU hard limit: no one process can use more
    assert cgroup.cpu_ms() > single_process_cap_ms
    assert cgroup.cpu_ms() >= 3600
    assert TreeSampler(ended.pid, cgroup).sample().cpu_ms == cgroup.cpu_ms()


# -- the end of a run ------------------------------------------------------------------------------
def test_a_setsid_daemon_does_not_survive_kill_all(
    forked: Forked,
    make_cgroup: MakeCgroup,
    layout: str,
    tmp_path: Path,
    gone: Callable[..., bool],
    wait_for_file: Callable[..., str],
) -> None:
    """The classic escape: ``setsid`` + a shell that backgrounds ``sleep`` and exits. The run's
    root is gone, the daemon is in another session with init as its parent — and still in the
    run's cgroup."""
    cgroup = make_cgroup(Quotas(processes=20), layout)
    marker = tmp_path / "daemon.pid"

    def leave_a_daemon() -> str:
        cgroup.join()
        os.execvp("setsid", ["setsid", "sh", "-c", f"sleep 60 & echo $! > {marker}"])

    ended = forked(leave_a_daemon)
    assert ended.exit_code == 0
    daemon = int(wait_for_file(str(marker)))
    assert not gone(daemon, 0)
    assert os.getsid(daemon) != os.getsid(0)
    assert daemon in cgroup.pids()

    cgroup.kill_all()
    assert gone(daemon)
    assert cgroup.pids() == []


def test_kill_all_wins_against_a_fork_storm(
    forked: Forked, make_cgroup: MakeCgroup, layout: str
) -> None:
    """Every process forks as fast as it can; ``cgroup.kill`` (or freeze-then-kill on v1) still
    empties the run in one go."""
    cgroup = make_cgroup(Quotas(processes=64), layout)

    def storm() -> None:
        cgroup.join()
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.005)  # at the cap: retry, without starving the test of CPU

    started = forked.start(storm)
    deadline = time.monotonic() + 10
    while len(cgroup.pids()) <= 10:  # the storm is under way (how fast depends on the load)
        assert time.monotonic() < deadline, "the fork storm never got going"
        time.sleep(0.01)
    cgroup.kill_all()
    assert cgroup.pids() == []  # in one go: nothing was left to a second round
    assert started.wait().signal == signal.SIGKILL


def test_parent_moves_the_child_in_while_it_waits_for_go(
    forked: Forked, make_cgroup: MakeCgroup
) -> None:
    """The runner's pattern: the child blocks on a go-ahead, the parent calls add(pid), only then
    does plugin code run — so everything it forks is inside."""
    cgroup = make_cgroup(Quotas(processes=5))
    go_r, go_w = os.pipe()

    def child() -> int:
        os.read(go_r, 1)
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        return pid

    started = forked.start(child)
    cgroup.add(started.pid)
    assert cgroup.pids() == [started.pid]
    os.write(go_w, b"g")
    ended = started.wait()
    grandchild = ended.result
    assert cgroup.pids() == [grandchild]
    cgroup.kill_all()
    assert cgroup.pids() == []
    os.close(go_r)
    os.close(go_w)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs write access to cgroupfs")
def test_a_process_that_can_write_cgroupfs_can_leave(
    forked: Forked, make_cgroup: MakeCgroup, gone: Callable[..., bool]
) -> None:
    """Documented limitation: the cgroup is a boundary only while the job cannot write to
    /sys/fs/cgroup. A root child without Landlock moves itself out and survives kill_all."""
    cgroup = make_cgroup(Quotas())
    left_r, left_w = os.pipe()

    def leave() -> None:
        cgroup.join()
        for procs in cgroup.procs_files:
            # <own cgroup>/plugbox/run-...: the host's own cgroup is two levels up.
            (Path(procs).parent.parent.parent / "cgroup.procs").write_text("0")
        os.write(left_w, b"x")
        time.sleep(30)

    started = forked.start(leave)
    assert os.read(left_r, 1) == b"x"
    assert started.pid not in cgroup.pids()
    cgroup.kill_all()
    assert not gone(started.pid, 0)  # escaped; the fixture's cleanup kills it
    os.close(left_r)
    os.close(left_w)


# -- cleanup and cost ------------------------------------------------------------------------------
def test_close_removes_every_directory_and_is_idempotent(
    forked: Forked, layout: str, gone: Callable[..., bool]
) -> None:
    cgroup = RunCgroup.create(
        "cleanup/../odd id", Quotas(memory_mb=64, processes=8), unified=layout == "unified"
    )
    assert cgroup is not None
    assert all(
        path.is_dir() and path.name.startswith("run-cleanup_.._odd_id-") for path in cgroup.paths
    )

    def sleeper() -> None:
        cgroup.join()
        time.sleep(30)

    started = forked.start(sleeper)
    while not cgroup.pids():
        time.sleep(0.001)
    cgroup.close()
    cgroup.close()
    assert not any(path.exists() for path in cgroup.paths)
    for path in cgroup.paths:
        # The shared parent goes too once empty; another run may still be using it.
        assert not path.parent.exists() or path.name not in os.listdir(path.parent)
    assert started.wait().signal == signal.SIGKILL
