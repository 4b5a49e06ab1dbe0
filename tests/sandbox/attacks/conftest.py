"""The attack suite's host: hostile plugins installed with pip, driven through the installed CLI.

Every attack runs as a reviewer would try it: the ``plugbox-hostile`` distribution
(``hostile/``) is pip-installed, non-editable, into a directory named in ``plugin_paths``, and
each job runs with ``plugbox jobs run eve:JOB --json`` — as root (how CI and most servers run
it) and as an unprivileged host user, where the kernel layers behave differently.

Layout of one host (a fresh one per test, under a 0755 scratch directory the user can reach)::

    scratch/
        plugbox.toml    state_dir, workspace, plugin_paths (outside the workspace)
        workspace/      the jobs' cwd, owned by the host user
        victim/         outside the workspace, owned by the host user: targets (file.txt, ...)
        state/          the host's state directory (run store)

A job finds ``victim/`` and ``state/`` as ``../victim`` and ``../state`` from its cwd
(``plugbox_hostile._attempt.victim`` / ``outside``).
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ...host.test_cli_unprivileged import (
    _unprivileged_user,
    as_user,
    plugbox_for,
    system_python_plugbox,
)

HOSTILE_PROJECT = Path(__file__).parent / "hostile"
ROOT = "root"
UNPRIVILEGED = "unprivileged"


def _scratch(prefix: str) -> Path:
    # Not tmp_path: pytest's base directory is 0700 root, out of the unprivileged user's reach.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def hostile_site() -> Iterator[Path]:
    """The hostile distribution, installed with pip into a directory of its own."""
    scratch = _scratch("plugbox-hostile-site-")
    site = scratch / "site"
    build = scratch / "build"
    shutil.copytree(
        HOSTILE_PROJECT, build, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(site), str(build)],
        check=True,
        timeout=300,
    )  # fmt: skip
    for path in (site, *site.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        yield site
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def unprivileged_plugbox() -> Iterator[tuple[pwd.struct_passwd, str]]:
    """An unprivileged user and a ``plugbox`` script that user can run."""
    user = _unprivileged_user()
    scratch = _scratch("plugbox-attacks-cli-")
    try:
        yield user, plugbox_for(user, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class Attack:
    """One attack job's run: its record, what it proved it ran, and how each attempt ended."""

    record: dict[str, Any]
    control: Any
    attempts: dict[str, dict[str, Any]]

    def stopped(self, name: str, *codes: int) -> dict[str, Any]:
        """Assert attempt ``name`` failed, with one of ``codes`` when given (EPERM, EACCES, ...)."""
        outcome = self.attempts[name]
        assert outcome["ok"] is False, f"{name} got through: {outcome}"
        if codes:
            names = [errno.errorcode.get(c, str(c)) for c in codes]
            assert outcome["errno"] in codes, f"{name}: expected {names}, got {outcome}"
        return outcome

    def succeeded(self, name: str) -> dict[str, Any]:
        outcome = self.attempts[name]
        assert outcome["ok"] is True, f"{name} was refused, but it is the control: {outcome}"
        return outcome


@dataclass
class Host:
    """One plugbox installation with the hostile plugins, run as ``kind`` (root / unprivileged)."""

    kind: str
    script: str
    scratch: Path
    user: pwd.struct_passwd | None  # None: the test process's own user (root here)
    last: subprocess.CompletedProcess[str] | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        return self.scratch / "plugbox.toml"

    @property
    def workspace(self) -> Path:
        return self.scratch / "workspace"

    @property
    def victim(self) -> Path:
        return self.scratch / "victim"

    @property
    def state(self) -> Path:
        return self.scratch / "state"

    @property
    def uid(self) -> int:
        return self.user.pw_uid if self.user is not None else os.geteuid()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``plugbox --config plugbox.toml ARGS`` as the host user; never raises on status."""
        self.last = subprocess.run(
            [self.script, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.scratch,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.scratch), "LANG": "C.UTF-8"},
            timeout=timeout,
            **(as_user(self.user) if self.user is not None else {}),
        )
        return self.last

    def serve(self) -> subprocess.Popen[str]:
        """``plugbox serve`` as the host user (stop it with :meth:`stop`)."""
        return subprocess.Popen(
            [self.script, "--config", str(self.config), "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.scratch,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.scratch), "LANG": "C.UTF-8"},
            **(as_user(self.user) if self.user is not None else {}),
        )

    def runs(self) -> list[dict[str, Any]]:
        out = self.cli("runs", "list", "--json")
        assert out.returncode == 0, out.stderr
        listed: list[dict[str, Any]] = json.loads(out.stdout)["runs"]
        return listed

    def run(self, job: str, *, plugin: str = "eve", timeout: float = 120) -> dict[str, Any]:
        """The run record of ``plugbox jobs run PLUGIN:JOB --json`` (whatever its status)."""
        out = self.cli("jobs", "run", f"{plugin}:{job}", "--json", timeout=timeout)
        try:
            record: dict[str, Any] = json.loads(out.stdout)
        except ValueError:
            pytest.fail(
                f"`plugbox jobs run {plugin}:{job} --json` printed no JSON record "
                f"(exit {out.returncode}):\nstdout: {out.stdout[-2000:]}\nstderr: {out.stderr[-3000:]}"
            )
        return record

    def attack(self, job: str, *, plugin: str = "eve") -> Attack:
        """Run an attack job that must finish (``success``) and report its attempts."""
        record = self.run(job, plugin=plugin)
        assert record["status"] == "success", (
            f"{plugin}:{job} did not report its attempts: {record['status']} {record.get('error')}"
            f"\noutput: {record.get('output', '')[-2000:]}"
        )
        result = record["result"]
        assert result.get("control"), f"{plugin}:{job} ran without a control: {result}"
        return Attack(record, result["control"], result["attempts"])


def make_host(kind: str, script: str, user: pwd.struct_passwd | None, site: Path) -> Host:
    scratch = _scratch(f"plugbox-attacks-{kind}-")
    host = Host(kind, script, scratch, user)
    host.workspace.mkdir()
    (host.workspace / ".plugbox").mkdir()
    host.victim.mkdir()
    (host.victim / "file.txt").write_text("victim\n")
    (host.victim / "import-target.txt").write_text("victim\n")
    host.config.write_text(
        f'state_dir = "{host.state}"\nworkspace = "{host.workspace}"\nplugin_paths = ["{site}"]\n'
    )
    if user is not None and os.geteuid() == 0:
        for path in (scratch, host.workspace, *host.workspace.rglob("*"), host.victim,
                     *host.victim.rglob("*"), host.config):  # fmt: skip
            os.chown(path, user.pw_uid, user.pw_gid)
    return host


@pytest.fixture(params=[ROOT, UNPRIVILEGED])
def host(request: pytest.FixtureRequest, hostile_site: Path) -> Iterator[Host]:
    """A fresh host per test, as root and as an unprivileged user."""
    if request.param == ROOT:
        if os.geteuid() != 0:
            pytest.skip("the root host needs root")
        script = shutil.which("plugbox", path=str(Path(sys.executable).parent))
        assert script, "the plugbox console script is not installed next to this interpreter"
        made = make_host(ROOT, script, None, hostile_site)
    else:
        user, script = request.getfixturevalue("unprivileged_plugbox")
        made = make_host(UNPRIVILEGED, script, user, hostile_site)
    try:
        yield made
    finally:
        shutil.rmtree(made.scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def readable_python_plugbox() -> Iterator[str]:
    """A root host's ``plugbox`` on a Python the run uid can read (a system Python's venv)."""
    if os.geteuid() != 0:
        pytest.skip("the run uid is a root host's")
    scratch = _scratch("plugbox-attacks-sys-")
    try:
        yield system_python_plugbox(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def run_uid_host(readable_python_plugbox: str, hostile_site: Path) -> Iterator[Host]:
    """A root host whose jobs can run as the dedicated run uid: every path they need is
    readable by other users (here the CI machines' own Python, under /root, is not)."""
    made = make_host(ROOT, readable_python_plugbox, None, hostile_site)
    try:
        yield made
    finally:
        shutil.rmtree(made.scratch, ignore_errors=True)


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
