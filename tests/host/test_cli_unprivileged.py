"""The ``plugbox`` CLI run by an operator who is not root: the installed script, a real config.

Without root no cgroup can be made (none is delegated here), so a run's memory and process limits
are only watched; the run record must say so, and ``plugbox doctor`` must say the same thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

USER = "plugbox-test"
CAPABILITIES = ("fs", "net", "env", "shell", "cpu", "memory", "processes")


def _unprivileged_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(USER)
    if shutil.which("useradd"):
        # A concurrent session may create it first (exit 9): look it up either way.
        subprocess.run(["useradd", "--system", "--no-create-home", USER], capture_output=True)
    for name in (USER, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.skip(f"no unprivileged user: useradd could not create {USER!r} and there is no 'nobody'")


def as_user(user: pwd.struct_passwd) -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _cannot_run(script: str, user: pwd.struct_passwd) -> str | None:
    """``None`` when ``user`` can run the ``plugbox`` script ``script``, else why not."""
    try:
        out = subprocess.run(
            [script, "--help"], capture_output=True, text=True, cwd="/", timeout=60, **as_user(user)
        )
    except OSError as err:
        return f"{script}: {err}"
    return None if out.returncode == 0 else f"{script}: {out.stderr.strip()[-300:]}"


def plugbox_for(user: pwd.struct_passwd, scratch: Path) -> str:
    """The installed ``plugbox`` script, or an equivalent ``user`` can run.

    The dev venv's interpreter may sit where the user cannot go (pyenv's under ``/root``, 0700,
    here). Then the script is installed again in a venv made from a system Python of the same
    version whose ``.pth`` adds the dev venv's site-packages: same code, a reachable interpreter.
    """
    installed = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert installed, "the plugbox console script is not installed next to this interpreter"
    why = _cannot_run(installed, user)
    if why is None:
        return installed
    script = system_python_plugbox(scratch, f"{user.pw_name} cannot run {installed} ({why})")
    again = _cannot_run(script, user)
    if again is not None:
        pytest.skip(f"{user.pw_name} cannot run plugbox: {why}; with a system Python: {again}")
    return script


def system_python_plugbox(scratch: Path, why: str = "") -> str:
    """A ``plugbox`` script on a system Python every user can read, running the dev code.

    For a host whose own Python sits where other users cannot go (pyenv under ``/root``).
    """
    installed = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert installed, "the plugbox console script is not installed next to this interpreter"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system is None:
        pytest.skip(f"{why or 'a Python every user can read is needed'}; no system {version}")
    venv = scratch / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dev_site = sysconfig.get_paths()["purelib"]
    Path(site, "plugbox-dev.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")
    script = venv / "bin" / "plugbox"
    body = Path(installed).read_text().split("\n", 1)[1]
    script.write_text(f"#!{python}\n{body}")
    script.chmod(0o755)
    return str(script)


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[pwd.struct_passwd, str, Path]]:
    """The user, the ``plugbox`` script it can run, and a directory it owns for config and state."""
    user = _unprivileged_user()
    # Not tmp_path: pytest's base directory is 0700 root, out of the user's reach.
    scratch = Path(tempfile.mkdtemp(prefix="plugbox-cli-unprivileged-"))
    scratch.chmod(0o755)
    try:
        script = plugbox_for(user, scratch)
        home = scratch / "home"
        (home / "workspace").mkdir(parents=True)
        (home / "plugbox.toml").write_text(
            f'state_dir = "{home / "state"}"\nworkspace = "{home / "workspace"}"\n'
        )
        for path in (home, *home.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        yield user, script, home
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def plugbox(setup: tuple[pwd.struct_passwd, str, Path], *args: str) -> Any:
    user, script, home = setup
    out = subprocess.run(
        [script, "--config", str(home / "plugbox.toml"), *args, "--json"],
        capture_output=True,
        text=True,
        cwd=home,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"},
        timeout=120,
        **as_user(user),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def doctor(setup: tuple[pwd.struct_passwd, str, Path]) -> dict[str, Any]:
    report: dict[str, Any] = plugbox(setup, "doctor")
    cgroups = next(layer for layer in report["layers"] if layer["name"] == "cgroups")
    if os.geteuid() != 0 and cgroups["active"]:
        pytest.skip("this user has delegated cgroups: its runs do not take the no-cgroup path")
    return report


@pytest.fixture(scope="module")
def record(setup: tuple[pwd.struct_passwd, str, Path], doctor: dict[str, Any]) -> dict[str, Any]:
    ran: dict[str, Any] = plugbox(setup, "jobs", "run", "example:hello-cron")
    return ran


def test_jobs_run_succeeds_as_the_user(
    setup: tuple[pwd.struct_passwd, str, Path], record: dict[str, Any]
) -> None:
    user, _, home = setup
    assert record["status"] == "success", record["error"]
    assert record["result"] == {"ok": True, "run": 1}
    log = home / "workspace" / ".plugbox" / "example" / "cron.log"
    assert log.read_text() == "run 1\n"
    assert log.stat().st_uid == user.pw_uid  # written by the user's job, not by root
    shown = plugbox(setup, "runs", "show", record["run_id"])
    assert shown["enforcement"] == record["enforcement"]


def test_runs_list_as_the_user_reads_its_own_store(
    setup: tuple[pwd.struct_passwd, str, Path], record: dict[str, Any]
) -> None:
    """The table comes from the fast path (ADR 0032): the user's own private state directory."""
    user, script, home = setup
    out = subprocess.run(
        [script, "--config", str(home / "plugbox.toml"), "runs", "list"],
        capture_output=True,
        text=True,
        cwd=home,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"},
        timeout=120,
        **as_user(user),
    )
    assert out.returncode == 0, out.stderr
    assert f"│ {record['run_id']} " in out.stdout and "example:hello-cron" in out.stdout
    listed = plugbox(setup, "runs", "list")["runs"]
    assert [run["run_id"] for run in listed] == [record["run_id"]]


def test_run_record_says_memory_and_processes_were_only_watched(record: dict[str, Any]) -> None:
    enforcement = record["enforcement"]
    assert enforcement["mode"] == "sandbox"
    assert {name: enforcement[name] for name in CAPABILITIES} == {
        "fs": "kernel",  # Landlock
        "net": "kernel",  # a network namespace inside a user namespace
        "env": "kernel",
        "shell": "kernel",  # Landlock + seccomp
        "cpu": "kernel",
        "memory": "best-effort",  # RLIMIT_AS and the watchdog: no cgroup
        "processes": "best-effort",
    }
    assert any("no cgroup for this run" in note for note in enforcement["notes"])


def test_doctor_agrees_with_the_run_record(doctor: dict[str, Any], record: dict[str, Any]) -> None:
    layers = {layer["name"]: layer for layer in doctor["layers"]}
    # An unprivileged zygote cannot return to the host's PID namespace: it is pid 1 of one of
    # its own and makes each run's there (ADR 0009); the record has no note of a missing layer.
    assert layers["pid namespace"]["active"] is True
    assert "its own user namespace" in layers["pid namespace"]["detail"]
    assert not [n for n in record["enforcement"]["notes"] if "PID namespace" in n]
    assert layers["cgroups"]["active"] is False
    assert "user namespace" in layers["network namespace"]["detail"]
    assert doctor["capabilities"] == {name: record["enforcement"][name] for name in CAPABILITIES}


def test_plugins_are_remembered_in_the_users_own_state_dir(
    setup: tuple[pwd.struct_passwd, str, Path],
) -> None:
    user, _, home = setup
    first = plugbox(setup, "plugins", "list")
    cache = home / "state" / "discovery-cache.json"
    written = cache.stat()
    assert (written.st_uid, stat.S_IMODE(written.st_mode)) == (user.pw_uid, 0o600)
    assert plugbox(setup, "plugins", "list") == first
    served = cache.stat()
    # Answered from the file, which was not rewritten: nothing was imported again.
    assert (served.st_ino, served.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    if os.geteuid() == 0:
        os.chown(cache, 0, 0)  # a file this user does not own is not trusted...
        assert plugbox(setup, "plugins", "list") == first
        assert cache.stat().st_uid == user.pw_uid  # ...it is ignored and replaced
