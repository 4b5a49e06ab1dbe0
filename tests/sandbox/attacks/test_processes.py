"""Class D of issue 9: a job changes the limits or scheduling of a process that is not its own.

Layer: seccomp — prlimit64, sched_set*, migrate/move_pages with a pid other than 0,
setpriority/ioprio_set with another pid or a whole uid, kcmp and pidfd_open answer EPERM before
the kernel looks the pid up (a root host's pid namespace would also hide it: ESRCH).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Host


@pytest.fixture
def target(host: Host) -> Iterator[int]:
    """A process of the host user, its pid where the job can read it."""
    user = {"user": host.uid, "group": host.user.pw_gid} if host.user is not None else {}
    proc = subprocess.Popen(["sleep", "120"], **user)  # type: ignore[call-overload]
    folder = host.workspace / ".plugbox" / "eve"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "target.pid").write_text(str(proc.pid))
    if host.user is not None:
        for path in (folder, folder / "target.pid"):
            os.chown(path, host.uid, host.user.pw_gid)
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _observe(pid: int) -> tuple[object, ...]:
    # /proc, not prlimit: reading another uid's limits needs CAP_SYS_RESOURCE, which a
    # container may withhold from root.
    return (
        Path(f"/proc/{pid}/limits").read_text(),
        os.getpriority(os.PRIO_PROCESS, pid),
        os.sched_getaffinity(pid),
        os.sched_getscheduler(pid),
    )


def test_other_processes_limits_and_scheduling_cannot_change(host: Host, target: int) -> None:
    before = _observe(target)
    attack = host.attack("other-processes")
    assert attack.control["target"] == target  # it read the pid: it ran
    own = attack.control["own"]
    assert all(outcome["ok"] for outcome in own.values()), own  # on itself the calls work
    tried = {name.split(":")[1] for name in attack.attempts}
    assert "target" in tried
    for name in attack.attempts:
        attack.stopped(name, errno.EPERM)
    assert _observe(target) == before
