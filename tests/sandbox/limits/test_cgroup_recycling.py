"""Run cgroups are recycled between runs: nothing of one run may reach the next.

The pool (``plugbox.sandbox.limits.cgroup_pool``) keeps emptied cgroups instead of removing them;
these tests show that a recycled cgroup starts every run clean — no leftover processes, its own
peak memory, CPU and OOM/pids counters, the new run's limits (none included) — and that a cgroup
which cannot be made clean is removed instead.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbox.sandbox import Outcome, RunContext, RunRequest, SandboxRunner
from plugbox.sandbox.limits import RunCgroup, cgroup_support
from plugbox.sandbox.limits.cgroup_pool import CgroupPool
from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions import Quotas

JOBS_DIR = str(Path(__file__).parents[1] / "jobs")
MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    cgroup_support().version is None, reason=f"no usable cgroups: {cgroup_support().detail}"
)

Run = Callable[..., Outcome]


@pytest.fixture
def run(tmp_path: Path) -> Any:
    """Runs on a runner of their own, so every run after the first gets a recycled cgroup."""
    runner = SandboxRunner(prewarm=False)

    def go(module: str, func: str, **quotas: int) -> Outcome:
        config = {k: quotas.pop(k) for k in ("mb", "cpu_ms") if k in quotas}
        # Let the last run's cgroup come back to the pool first, so this run gets it recycled
        # (an internal wait: the pool is what these tests are about).
        runner._cleaner.drain()
        return runner.run(
            RunRequest(
                handler=f"{module}:{func}",
                workspace=str(tmp_path),
                context=RunContext(
                    job_id=func, plugin_id="t", plugin_version="0", run_id="", config=config
                ),
                permissions=perms.Permissions(quotas=perms.Quotas(**quotas)),
                python_path=(JOBS_DIR,),
            )
        )

    yield go
    runner.close()


def test_after_an_oom_kill_the_next_run_starts_clean(run: Run) -> None:
    bomb = run("plugbox_attack_jobs", "memory_bomb", memory_mb=64)
    assert (bomb.status, bomb.kill_reason) == ("killed", "memory")
    small = run("plugbox_access_jobs", "allocate", mb=8, memory_mb=64)
    assert small.status == "success", small.error
    assert small.kill_reason is None
    assert small.peak_memory_mb < 48  # its own peak, not the bomb's ~64 MB


def test_cpu_is_counted_per_run(run: Run) -> None:
    busy = run("plugbox_access_jobs", "allocate", cpu_ms=300)
    idle = run("plugbox_access_jobs", "allocate")
    assert busy.cpu_ms >= 250
    assert idle.cpu_ms < 150  # not the busy run's CPU carried over


def test_the_next_run_gets_its_own_limits_including_none(run: Run) -> None:
    tight = run("plugbox_access_jobs", "allocate", mb=96, memory_mb=64)
    assert (tight.status, tight.kill_reason) == ("killed", "memory")
    free = run("plugbox_access_jobs", "allocate", mb=96, memory_mb=512)
    assert free.status == "success", free.error
    tight_again = run("plugbox_access_jobs", "allocate", mb=96, memory_mb=64)
    assert tight_again.kill_reason == "memory"


def test_the_pids_limit_and_oom_counters_start_over(
    forked: Any, make_cgroup: Callable[..., RunCgroup]
) -> None:
    cgroup = make_cgroup(Quotas(processes=4, memory_mb=32))

    def fork_until_refused() -> None:
        cgroup.join()
        children = []
        try:
            for _ in range(8):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
        except OSError:
            pass

    def bomb() -> None:
        cgroup.join()
        hog = [bytearray(16 * MIB) for _ in range(8)]
        del hog

    forked(fork_until_refused)
    forked(bomb)
    cgroup.kill_all()
    assert cgroup.pids_limit_hit() and cgroup.oom_killed()
    assert cgroup.recycle()
    assert not cgroup.pids_limit_hit() and not cgroup.oom_killed()
    assert cgroup.peak_memory_mb() <= 4  # what the kernel had not freed yet, at most


def test_a_cgroup_left_with_charged_tmpfs_pages_is_removed_not_recycled(
    forked: Any, make_cgroup: Callable[..., RunCgroup]
) -> None:
    cgroup = make_cgroup(Quotas(memory_mb=64))
    path = Path(f"/dev/shm/plugbox-test-{uuid.uuid4().hex}")

    def write_and_leave() -> None:
        cgroup.join()
        path.write_bytes(b"x" * (8 * MIB))  # charged to the run, outlives it

    try:
        forked(write_and_leave)  # 8 MiB of tmpfs: more than a recycled cgroup may keep
        cgroup.kill_all()
        assert cgroup.recycle() is False
    finally:
        path.unlink(missing_ok=True)


def test_a_recycled_cgroup_is_empty_and_a_closed_pool_removes_what_comes_back(
    forked: Any,
) -> None:
    pool = CgroupPool(max_idle=2)
    first = pool.acquire("test-recycle", Quotas(memory_mb=64))
    assert first is not None
    forked(first.join)  # a process joins and exits
    pool.release(first)
    again = pool.acquire("test-recycle", Quotas(memory_mb=32))
    assert again is first  # recycled, not made anew
    assert again.pids() == []
    pool.close()
    pool.release(again)  # after close: removed, not kept
    assert not any(path.exists() for path in again.paths)
