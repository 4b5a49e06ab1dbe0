"""Who a root host's job is: the dedicated run uid, never uid 0, where the OS allows it.

With every capability dropped, uid 0 still *owns* most of the machine's files. Where every path
a job needs is readable by other users, a root host's run switches to the run uid (65532) after
Landlock; where one is not (this CI machine's own Python lives under /root, mode 0700), the run
keeps uid 0 without capabilities and its record says which path blocked it.
"""

from __future__ import annotations

import errno

from plugbox.sandbox.run_identity import RUN_ID

from .conftest import ROOT, Host


def test_a_root_hosts_job_runs_as_the_run_uid(run_uid_host: Host) -> None:
    host = run_uid_host
    (host.workspace / ".plugbox" / "eve").mkdir()
    earlier = host.workspace / ".plugbox" / "eve" / "control.txt"
    earlier.write_text("written by an earlier run as root\n")  # handed over before the spawn
    attack = host.attack("control")
    assert attack.control["uid"] == RUN_ID  # layer: the run identity (setresuid in the child)
    assert any(f"ran as uid {RUN_ID}" in note for note in attack.record["enforcement"]["notes"])
    for name in ("control.txt", "plain.txt"):
        assert (host.workspace / ".plugbox" / "eve" / name).stat().st_uid == RUN_ID
    assert host.workspace.stat().st_uid == 0  # the workspace root stays the operator's
    attack.stopped("read_victim", errno.EACCES)
    # A file a job left is visibly not the operator's: moved out of the workspace (past the
    # workspace mark), the config loader still refuses it, by its owner.
    planted = host.workspace / ".plugbox" / "eve" / "control.txt"
    config = host.scratch / "moved-plugbox.toml"
    planted.rename(config)
    config.write_text(host.config.read_text().replace(str(host.workspace), str(host.victim)))
    out = host.cli("--config", str(config), "jobs", "list")
    assert out.returncode != 0 and "belongs to user id" in out.stderr + out.stdout


def test_where_the_run_uid_cannot_reach_python_the_record_says_so(host: Host) -> None:
    if host.kind != ROOT:
        return  # an unprivileged host's jobs run as the host user: there is no other uid
    attack = host.attack("control")
    notes = attack.record["enforcement"]["notes"]
    if attack.control["uid"] == RUN_ID:
        assert any(f"ran as uid {RUN_ID}" in note for note in notes)
    else:
        assert attack.control["uid"] == 0
        assert any(f"not as the run uid {RUN_ID}" in note for note in notes), notes


def test_the_operator_chooses_the_run_uid(run_uid_host: Host) -> None:
    host = run_uid_host
    host.config.write_text(host.config.read_text() + "run_uid = 64999\n")
    attack = host.attack("control")
    assert attack.control["uid"] == 64999
    assert (host.workspace / ".plugbox" / "eve" / "control.txt").stat().st_uid == 64999
