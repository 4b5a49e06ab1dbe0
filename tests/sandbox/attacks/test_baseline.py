"""The suite's own controls, and attacks by a plugin's import-time code during discovery.

``eve:control`` is an honest job of the hostile distribution: if it fails, every other attack
test would fail for a reason that is not the attack. ``mallory`` attacks while
``plugbox plugins list`` imports it, before any reviewer has read its permissions.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from pathlib import Path

from .conftest import Host


def test_the_hostile_plugin_installs_and_an_honest_job_runs(host: Host) -> None:
    attack = host.attack("control")
    assert attack.control["cwd"] == str(host.workspace)
    assert (host.workspace / ".plugbox" / "eve" / "control.txt").read_text().startswith("run ")
    assert (host.workspace / ".plugbox" / "eve" / "plain.txt").read_text() == "plain\n"
    assert attack.succeeded("temp_file")["value"].startswith("'.plugbox/eve/")
    # Landlock: the victim is outside every grant.
    attack.stopped("read_victim", errno.EACCES)
    attack.stopped("write_victim", errno.EACCES)
    assert (host.victim / "file.txt").read_text() == "victim\n"


def _mallory(host: Host) -> dict[str, object]:
    out = host.cli("plugins", "list", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert any(p["id"] == "mallory" for p in listed["plugins"]), f"no mallory: {listed}"
    jobs = host.cli("jobs", "list", "--json")
    assert jobs.returncode == 0, jobs.stderr
    found = next(j for j in json.loads(jobs.stdout)["jobs"] if j["job"] == "mallory:report")
    summary: dict[str, object] = json.loads(found["description"])
    return summary


def test_import_time_code_is_confined_during_discovery(host: Host) -> None:
    target = host.victim / "import-target.txt"
    before = target.stat()
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = host.victim / "host.sock"
    listening.bind(str(sock_path))
    os.chmod(sock_path, 0o777)
    listening.listen(1)
    listening.settimeout(0)
    try:
        summary = _mallory(host)
    finally:
        listening.close()
    control = summary["control"]
    assert isinstance(control, dict) and control["pid"] > 0  # the import-time code ran
    attempts = summary["attempts"]
    assert isinstance(attempts, dict)
    got_through = {name: a for name, a in attempts.items() if a["ok"]}
    assert not got_through, f"import-time attacks got through: {got_through}"
    after = target.stat()
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_mtime == before.st_mtime
    assert target.read_text() == "victim\n"
    assert not (host.workspace / "plugbox.toml").exists()
    assert stat.S_IMODE(host.state.stat().st_mode) == 0o700
    assert not _has_xattr(target)


def _has_xattr(path: Path) -> bool:
    try:
        return bool(os.listxattr(path))
    except OSError:
        return False
