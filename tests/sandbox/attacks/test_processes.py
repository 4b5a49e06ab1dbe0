"""Class D of issue 9: a job changes the limits or scheduling of a process that is not its own.

Layer: seccomp — prlimit64, sched_set*, migrate/move_pages with a pid other than 0,
setpriority/ioprio_set with another pid or a whole uid, kcmp and pidfd_open answer EPERM before
the kernel looks the pid up (the run's PID namespace would also hide it: ESRCH; seccomp answers
first, and still stands where a machine has no PID namespace).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .conftest import Host


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
