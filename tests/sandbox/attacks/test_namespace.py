"""Which processes a run can see: only its own (a PID namespace per run), on every host.

A root host's zygote makes each run's namespace from the host's; an unprivileged host's zygote is
pid 1 of a namespace its own user namespace owns and makes them there (docs/adr/0009).
"""

from __future__ import annotations

import errno

from .conftest import Host


def test_a_run_sees_no_process_but_its_own(host: Host, target: int) -> None:
    attack = host.attack("pid-scan")
    control = attack.control
    # The control: the job read the target's pid and the scan found the job itself, so it ran
    # and kill(pid, 0) answers.
    assert control["target"] == target
    assert control["exists"], "the scan found not even the job itself: it did not run"
    # Layer: the run's own PID namespace — nothing else exists, the host included.
    assert control["pid"] == 1 and control["ppid"] == 0
    assert control["exists"] == [1] and control["signalable"] == [1]
    attack.stopped("kill_host", errno.ESRCH)  # without the layer: EPERM (Landlock's scoping)
    attack.stopped("kill_parent", errno.ESRCH)  # pid 1 has no parent in its namespace
    # /proc is the host's mount, so its listing would name every process: Landlock keeps the
    # job out of it altogether.
    attack.stopped("list_proc", errno.EACCES)
    # And the record says the layer was there.
    notes = attack.record["enforcement"]["notes"]
    assert not [note for note in notes if "PID namespace" in note], notes
