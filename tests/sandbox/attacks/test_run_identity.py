"""Who a root host's job is: the dedicated run uid, never uid 0, where the OS allows it.

With every capability dropped, uid 0 still *owns* most of the machine's files. A root host's run
switches to the run uid (65532) after Landlock wherever it can reach every path the job needs —
also through a folder other users cannot search, such as this CI machine's ``/root`` (mode 0700)
above its pyenv Python: the zygote's private mount view opens that folder for searching only, for
the zygote's processes only (kernel/mount_view.py). The plain ``host`` fixture runs on that Python.
"""

from __future__ import annotations

import errno
import os

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


def test_a_root_host_on_a_python_under_root_runs_its_jobs_as_the_run_uid(host: Host) -> None:
    """This machine's Python lives under /root (0700): the jobs run as the run uid all the same."""
    if host.kind != ROOT:
        return  # an unprivileged host's jobs run as the host user: there is no other uid
    attack = host.attack("control")
    assert attack.control["uid"] == RUN_ID, attack.record["enforcement"]["notes"]
    assert any(f"ran as uid {RUN_ID}" in note for note in attack.record["enforcement"]["notes"])
    for name in ("control.txt", "plain.txt"):  # what it made is visibly not the operator's
        assert (host.workspace / ".plugbox" / "eve" / name).stat().st_uid == RUN_ID


def test_an_operator_file_the_rules_grant_is_refused_by_its_owner_bits(host: Host) -> None:
    """Landlock lets the job open shared/; a root-owned 0600 file there is refused by DAC."""
    shared = host.workspace / "shared"
    shared.mkdir()
    (shared / "readable.txt").write_text("for everyone\n")
    secret = shared / "secret.txt"
    secret.write_text("the operator's\n")
    secret.chmod(0o600)
    if host.user is not None:
        os.chown(shared, host.user.pw_uid, host.user.pw_gid)
    assert secret.stat().st_uid == 0
    attack = host.attack("dac-secret")
    assert attack.control["readable"] == "for everyone\n"  # the grant works: the code ran
    assert attack.control["uid"] == (RUN_ID if host.kind == ROOT else host.uid)
    # layer: the run identity — as uid 0 without capabilities the job would own the file
    attack.stopped("read_secret", errno.EACCES)


def test_the_operator_chooses_the_run_uid(run_uid_host: Host) -> None:
    host = run_uid_host
    host.config.write_text(host.config.read_text() + "run_uid = 64999\n")
    attack = host.attack("control")
    assert attack.control["uid"] == 64999
    assert (host.workspace / ".plugbox" / "eve" / "control.txt").stat().st_uid == 64999
