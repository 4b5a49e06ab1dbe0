"""Which processes a run can see: on a root host, only its own (a PID namespace per run)."""

from __future__ import annotations

import errno

from .conftest import ROOT, Host


def test_a_run_sees_no_process_but_its_own(host: Host) -> None:
    attack = host.attack("pid-scan")
    control = attack.control
    assert control["exists"], "the scan found not even the job itself: it did not run"
    if host.kind == ROOT:
        # Layer: the run's own PID namespace — nothing else exists, the host included.
        assert control["pid"] == 1
        assert control["exists"] == [1] and control["signalable"] == [1]
        attack.stopped("kill_parent", errno.ESRCH)
    else:
        # An unprivileged host cannot give a run a PID namespace (the zygote has no
        # CAP_SYS_ADMIN over the host's): other pids exist for the run, but Landlock's signal
        # scoping lets it signal none of them but its own process.
        assert control["signalable"] == [control["pid"]]
        attack.stopped("kill_parent", errno.EPERM)
