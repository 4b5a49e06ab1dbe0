"""Whole runs through :class:`SandboxRunner` when the host is not root.

A non-root host cannot create cgroups (none are delegated here), so memory and process limits fall
back to rlimits and the parent's polling watchdog, the end of a run to the subreaper and the kill
loop, and the network namespace needs a user namespace. These tests start a real host — a driver
process holding one ``SandboxRunner`` — as an unprivileged user, send it jobs over a pipe, and
assert what each run's :class:`Outcome` says and what really happened.

Every attack here targets something the user's own permissions would allow (files it owns,
``/tmp``, its own host process), so the refusal can only come from the sandbox's layer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import select
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from plugbox.sandbox import Outcome
from plugbox.sdk import permissions as perms

from .conftest import JOBS_DIR, SECRET

USER = "plugbox-test"
REPLY_TIMEOUT_S = 120.0
CGROUP_NOTE = "no cgroup for this run: memory and processes were enforced by rlimits and polling"

# The host: one runner, one JSON request per line in, one JSON reply per line out. After every
# run it lists its own descendants that are still alive and were not before the run (the zygote
# and anything an earlier run left are not this run's).
DRIVER = """
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
import psutil
from plugbox.sandbox import RunContext, RunRequest, SandboxRunner
from plugbox.sandbox.kernel import namespaces
from plugbox.sdk.permissions import Permissions

def reply(message):
    sys.stdout.write(json.dumps(message) + "\\n")
    sys.stdout.flush()

def alive():
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.add(proc.pid)
        except psutil.Error:
            pass
    return found

network = namespaces.probe_network()
with SandboxRunner(prewarm=False) as runner:
    (zygote,) = psutil.Process().children()
    unshared = {
        ns: os.readlink(f"/proc/self/ns/{ns}") != os.readlink(f"/proc/{zygote.pid}/ns/{ns}")
        for ns in ("user", "net")
    }
    reply({"pid": os.getpid(), "uid": os.getuid(), "euid": os.geteuid(),
           "machine": runner.machine, "network": list(network), "zygote_unshared": unshared,
           "started": zygote.pid, "zygote": runner._zygote.pid})
    def run(ask):
        return runner.run(RunRequest(
            handler=ask["handler"],
            workspace=ask["workspace"],
            context=RunContext(job_id="j", plugin_id="t", plugin_version="0", run_id="",
                               config=ask["config"]),
            permissions=Permissions.model_validate_json(ask["permissions"]),
            environment=ask["environment"],
            python_path=(ask["jobs_dir"],),
        )).model_dump(mode="json")

    for line in sys.stdin:
        ask = json.loads(line)
        if ask["op"] == "writable":
            reply({"writable": os.access(ask["path"], os.W_OK)})
            continue
        if ask["op"] == "stalled":
            # The zygote stopped while a spawn waits for it: the spawn times out, and the child
            # the zygote forks for it once it runs again is killed (named by its host pid).
            import signal
            import plugbox.sandbox.runner as runner_module
            runner_module.SPAWN_TIMEOUT_S = 0.5
            zygote_process = psutil.Process(runner._zygote.pid)
            zygote_process.send_signal(signal.SIGSTOP)
            try:
                stalled = run(ask)
            finally:
                zygote_process.send_signal(signal.SIGCONT)
            runner_module.SPAWN_TIMEOUT_S = 10.0
            # The zygote answers in order: once the next run has its child, the late one was
            # forked and its kill asked for. Then no child of the zygote may stay.
            after = run(ask)
            deadline = time.monotonic() + 10
            while zygote_process.children() and time.monotonic() < deadline:
                time.sleep(0.02)
            late = []
            for child in zygote_process.children():
                try:
                    late.append(f"{child.pid} {child.name()} {child.status()}")
                except psutil.Error:
                    pass
            reply({"outcomes": [stalled, after], "late": late})
            continue
        if ask["op"] == "together":
            # Several runs at once, as plugbox serve runs them: each starts `after_s` seconds
            # after the first.
            with ThreadPoolExecutor(len(ask["runs"])) as pool:
                futures = []
                for each in ask["runs"]:
                    time.sleep(each["after_s"])
                    futures.append(pool.submit(run, each))
                reply({"outcomes": [future.result() for future in futures]})
            continue
        before = alive()
        outcome = run(ask)
        reply({"outcome": outcome, "survivors": sorted(alive() - before)})
"""


# --- the unprivileged user and a Python it can run -------------------------------------------------
def _unprivileged_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())  # already unprivileged: the host runs as we do
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
    """``subprocess`` arguments that start a process as ``user`` (nothing when we already are)."""
    if os.geteuid() != 0:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _imports_plugbox(python: str, user: pwd.struct_passwd) -> str | None:
    """``None`` when ``user`` can run ``python`` and import the runner with it, else why not."""
    try:
        probe = subprocess.run(
            [python, "-c", "import plugbox.sandbox.runner"],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=60,
            **as_user(user),
        )
    except OSError as err:
        return f"{python}: {err}"
    return None if probe.returncode == 0 else f"{python}: {probe.stderr.strip()[-300:]}"


def python_for(user: pwd.struct_passwd, scratch: Path) -> str:
    """A Python interpreter ``user`` can execute that imports this checkout's packages.

    The dev venv's own interpreter may sit where the user cannot go — here it is pyenv's under
    ``/root`` (mode 0700), so ``execve`` fails with EACCES. Then a venv is made in ``scratch`` from
    a system Python of the same version, with a ``.pth`` that adds the dev venv's site-packages
    (whose editable ``.pth`` files bring in the checkout): same packages, a reachable interpreter.
    """
    why = _imports_plugbox(sys.executable, user)
    if why is None:
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system is None:
        pytest.skip(f"{user.pw_name} cannot run this venv ({why}) and there is no system {version}")
    venv = scratch / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dev_site = sysconfig.get_paths()["purelib"]
    Path(site, "plugbox-dev.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")
    again = _imports_plugbox(python, user)
    if again is not None:
        pytest.skip(
            f"{user.pw_name} cannot import plugbox: {why}; with a system {version}: {again}"
        )
    return python


# --- the unprivileged host -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ran:
    outcome: Outcome
    survivors: list[int]  # the host's descendants alive after the run that were not before it


class Host:
    """A ``SandboxRunner`` in a process of the unprivileged user, driven over its stdin/stdout."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self._process = process
        self._stderr = stderr
        self.hello = self._receive()
        self.pid = int(self.hello["pid"])

    def run(
        self,
        handler: str,
        workspace: Path,
        *,
        permissions: perms.Permissions | None = None,
        config: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
    ) -> Ran:
        permissions = permissions or perms.presets.plugin_workspace("t")
        reply = self._ask(
            {
                "op": "run",
                "handler": handler,
                "workspace": str(workspace),
                "permissions": permissions.model_dump_json(),
                "config": config or {},
                "environment": environment or {},
                "jobs_dir": JOBS_DIR,
            }
        )
        return Ran(Outcome.model_validate(reply["outcome"]), list(reply["survivors"]))

    def stalled(self, handler: str, workspace: Path) -> tuple[Outcome, Outcome, list[str]]:
        """A run asked for while the zygote is stopped and one after it ran again: their
        outcomes, and the zygote's children still alive then (the late child of the abandoned
        spawn must be killed)."""
        reply = self._ask(
            {
                "op": "stalled",
                "handler": handler,
                "workspace": str(workspace),
                "permissions": perms.presets.plugin_workspace("t").model_dump_json(),
                "config": {},
                "environment": {},
                "jobs_dir": JOBS_DIR,
            }
        )
        stalled, after = (Outcome.model_validate(o) for o in reply["outcomes"])
        return stalled, after, list(reply["late"])

    def together(self, runs: list[dict[str, Any]]) -> list[Outcome]:
        """Start runs at once (each dict: ``handler``, ``workspace``, ``permissions``,
        ``config``, ``after_s`` — its delay after the previous start); their outcomes."""
        asks = [
            {
                "handler": each["handler"],
                "workspace": str(each["workspace"]),
                "permissions": each["permissions"].model_dump_json(),
                "config": each.get("config") or {},
                "environment": {},
                "jobs_dir": JOBS_DIR,
                "after_s": each.get("after_s", 0),
            }
            for each in runs
        ]
        reply = self._ask({"op": "together", "runs": asks})
        return [Outcome.model_validate(outcome) for outcome in reply["outcomes"]]

    def writable(self, path: Path | str) -> bool:
        """Whether the user's own permissions (no sandbox) allow writing in ``path``."""
        return bool(self._ask({"op": "writable", "path": str(path)})["writable"])

    def close(self) -> None:
        """End the host as an operator would (EOF) and check that closing the runner worked."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            code = self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        finally:
            assert self._process.stdout is not None
            self._process.stdout.close()
        assert code == 0, f"the host exited with {code}:\n{self._stderr.read_text()[-3000:]}"

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        self._process.stdin.flush()
        return self._receive()

    def _receive(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], REPLY_TIMEOUT_S)
        line = self._process.stdout.readline() if ready else b""
        if not line:
            self._process.kill()
            pytest.fail(
                f"the unprivileged host sent no reply (exit {self._process.wait()}):\n"
                + self._stderr.read_text()[-3000:]
            )
        reply: dict[str, Any] = json.loads(line)
        return reply


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    return _unprivileged_user()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Not tmp_path: pytest's base directory is 0700 root, out of the user's reach.
    path = Path(tempfile.mkdtemp(prefix="plugbox-unprivileged-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def host(user: pwd.struct_passwd, scratch: Path) -> Iterator[Host]:
    python = python_for(user, scratch)
    stderr = scratch / "host.stderr"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [python, "-c", DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=scratch,
            # The host's own secret: a job must not find it in /proc/<host>/environ.
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOST_TOKEN": SECRET},
            **as_user(user),
        )
    started = Host(process, stderr)
    if os.geteuid() != 0 and started.hello["machine"]["cgroups"]:
        started.close()
        pytest.skip("this user has delegated cgroups: its runs do not take the no-cgroup path")
    yield started
    started.close()


@pytest.fixture
def workspace(user: pwd.struct_passwd, scratch: Path) -> Path:
    """``<own>/ws`` with ``.plugbox/t``; ``<own>`` and everything in it belong to the user."""
    own = Path(tempfile.mkdtemp(dir=scratch))
    root = own / "ws"
    (root / ".plugbox" / "t").mkdir(parents=True)
    (root / ".env").write_text(f"TOKEN={SECRET}\n")
    (own / "outside-secret.txt").write_text(SECRET)
    for path in (own, *own.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
    return root


def quotas(**values: int) -> perms.Permissions:
    return perms.combine(
        perms.presets.plugin_workspace("t"), perms.Permissions(quotas=perms.Quotas(**values))
    )


def attack(host: Host, workspace: Path, job: str, **config: Any) -> dict[str, Any]:
    """Run an attack job that reports what stopped it; the run itself must succeed."""
    ran = host.run(f"plugbox_attack_jobs:{job}", workspace, config=config)
    assert ran.outcome.status == "success", ran.outcome.error
    assert ran.survivors == []
    result: dict[str, Any] = ran.outcome.result  # type: ignore[assignment]
    return result


def named(name: str, user: pwd.struct_passwd) -> list[psutil.Process]:
    """The test user's live processes called ``name`` (a daemon's pid is its run namespace's)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if (
                proc.name() == name
                and proc.uids().real == user.pw_uid
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
    return found


def survivors_named(name: str, user: pwd.struct_passwd, *, within_s: float = 2.0) -> list[int]:
    """The pids of ``name`` still alive once ``within_s`` has passed (returns once none is)."""
    deadline = time.monotonic() + within_s
    while (alive := named(name, user)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [proc.pid for proc in alive]


def kill_named(name: str, user: pwd.struct_passwd) -> None:
    """Clean up daemons a run left behind (only processes of the test user)."""
    for proc in named(name, user):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def daemon_pid(outcome: Outcome) -> int:
    return int(outcome.output.split("daemon ", 1)[1].split()[0])


def daemon_name() -> str:
    return f"pbxd-{uuid.uuid4().hex[:8]}"


# --- the host really is unprivileged, and says what it enforces -----------------------------------
def test_host_and_job_run_as_the_unprivileged_user(
    host: Host, user: pwd.struct_passwd, workspace: Path
) -> None:
    assert (host.hello["uid"], host.hello["euid"]) == (user.pw_uid, user.pw_uid)
    assert user.pw_uid != 0
    ran = host.run("plugbox_unprivileged_jobs:whoami", workspace)
    # The user namespace maps only the user's own ids: inside it the job is still that user.
    assert ran.outcome.result == {"uid": user.pw_uid, "euid": user.pw_uid, "gid": user.pw_gid}


def test_machine_layers_without_root(host: Host) -> None:
    assert host.hello["machine"]["landlock_abi"] >= 1
    assert host.hello["machine"]["seccomp"] is True
    assert host.hello["machine"]["cgroups"] is False
    # The network namespace needs a user namespace without root, and the zygote really is in both.
    assert host.hello["network"] == [True, "userns+netns"]
    assert host.hello["machine"]["netns"] is True
    assert host.hello["zygote_unshared"] == {"user": True, "net": True}


def nspid(pid: int) -> list[int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return [int(n) for n in status.split("NSpid:", 1)[1].splitlines()[0].split()]


def test_the_zygote_is_pid_1_of_a_pid_namespace_of_its_own(host: Host) -> None:
    # ADR 0009: the process the host started waits; its child, the zygote, is pid 1 of a PID
    # namespace owned by the zygote's user namespace, and every run's namespace is made in it.
    assert host.hello["machine"]["pidns"] is True
    assert "pidns_missing" not in host.hello["machine"]
    started, zygote = host.hello["started"], host.hello["zygote"]
    assert started != zygote
    assert psutil.Process(started).name() == "plugbox-pidns"
    assert psutil.Process(zygote).ppid() == started
    assert psutil.Process(zygote).name() == "plugbox-zygote"
    assert nspid(started) == [started]
    assert nspid(zygote) == [zygote, 1]


def test_a_stopped_zygote_is_named_and_its_late_child_killed(host: Host, workspace: Path) -> None:
    # The parent knows the zygote by the host pid its `ready` carried (not the waiter's), and a
    # `kill` names a run child by its host pid, which the zygote maps back to its own.
    outcome, after, late = host.stalled("plugbox_attack_jobs:ok", workspace)
    assert outcome.status == "failed" and outcome.error is not None
    assert "took longer than 0.5 s to prepare" in outcome.error.message
    assert "the zygote process is stopped" in outcome.error.message
    assert after.status == "success", after.error  # the runner carries on
    assert late == []


def test_trivial_job_succeeds_and_reports_each_layer_honestly(host: Host, workspace: Path) -> None:
    ran = host.run("plugbox_attack_jobs:ok", workspace)
    outcome = ran.outcome
    assert outcome.status == "success", outcome.error
    assert outcome.result == {"ok": True}
    assert "printed to stdout" in outcome.output
    enforcement = outcome.enforcement
    assert enforcement.mode == "sandbox"
    # Landlock, the userns + netns and seccomp all work unprivileged ...
    assert (enforcement.fs, enforcement.net, enforcement.env, enforcement.shell) == ("kernel",) * 4
    assert enforcement.landlock_abi is not None and enforcement.landlock_abi >= 1
    # ... cgroups do not: memory and processes are only watched, and the record says why.
    assert (enforcement.memory, enforcement.processes) == ("best-effort", "best-effort")
    assert CGROUP_NOTE in enforcement.notes
    assert ran.survivors == []


# --- filesystem: Landlock, where the user's own permissions would allow it --------------------------
def test_writes_outside_the_workspace_are_stopped_by_landlock(host: Host, workspace: Path) -> None:
    targets = {
        "pwned.txt": workspace / "pwned.txt",  # the workspace root is not a write root
        "../pwned.txt": workspace.parent / "pwned.txt",
        f"/tmp/plugbox-pwned-{uuid.uuid4().hex}.txt": None,
    }
    try:
        for path, where in targets.items():
            landed = where or Path(path)
            assert host.writable(landed.parent), f"control: {landed.parent} must be writable"
            result = attack(host, workspace, "write_path", path=path)
            assert (result["stopped"], result["errno"]) == (True, errno.EACCES), (path, result)
            assert not landed.exists()
    finally:
        for path, where in targets.items():
            (where or Path(path)).unlink(missing_ok=True)


@pytest.mark.parametrize("path", [".env", "../outside-secret.txt", "/etc/passwd"])
def test_reads_outside_the_read_list_are_stopped_by_landlock(
    host: Host, workspace: Path, path: str
) -> None:
    result = attack(host, workspace, "read_path", path=path)
    assert (result["stopped"], result["errno"]) == (True, errno.EACCES), result


# --- environment ---------------------------------------------------------------------------------------
def test_another_process_environ_is_unreadable(host: Host, workspace: Path) -> None:
    # Same uid as the host, so file modes allow it. Landlock refuses (no /proc in the read list);
    # for the host's file so does the capability check, the job being in a child user namespace.
    for path in (f"/proc/{host.pid}/environ", "/proc/self/environ"):
        result = attack(host, workspace, "read_path", path=path)
        assert (result["stopped"], result["errno"]) == (True, errno.EACCES), (path, result)
        assert SECRET not in json.dumps(result)


def test_only_allowed_environment_exists_in_the_child(host: Host, workspace: Path) -> None:
    ran = host.run(
        "plugbox_attack_jobs:environ",
        workspace,
        permissions=perms.combine(
            perms.presets.plugin_workspace("t"), perms.presets.env_vars("ALLOWED")
        ),
        environment={"ALLOWED": "yes", "AWS_SECRET_ACCESS_KEY": SECRET},
    )
    environ = ran.outcome.result["environ"]  # type: ignore[index,call-overload]
    assert environ["ALLOWED"] == "yes"
    assert set(environ) <= {"ALLOWED", "TMPDIR", "LANG"}
    assert SECRET not in json.dumps(ran.outcome.result)


# --- network, shell, signals ---------------------------------------------------------------------------
def test_raw_tcp_is_stopped_by_seccomp_and_nothing_arrives(host: Host, workspace: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        result = attack(host, workspace, "tcp_connect", port=listener.getsockname()[1])
        assert (result["stopped"], result["errno"]) == (True, errno.EPERM), result
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_subprocess_without_shell_capability_is_stopped_by_seccomp(
    host: Host, workspace: Path
) -> None:
    result = attack(host, workspace, "subprocess_run")
    assert (result["stopped"], result["errno"]) == (True, errno.EPERM), result


def test_signalling_the_host_finds_no_such_process(host: Host, workspace: Path) -> None:
    # Same uid as the host: kill(2)'s own permission check would let this through. The run is
    # pid 1 of its own PID namespace, where the host's pid does not exist (Landlock's signal
    # scoping, EPERM, stays underneath).
    result = attack(host, workspace, "signal_parent", pid=host.pid)
    assert (result["stopped"], result["errno"]) == (True, errno.ESRCH), result


# --- memory and processes without a cgroup: rlimits and the watchdog --------------------------------
def test_memory_bomb_is_killed(host: Host, workspace: Path) -> None:
    ran = host.run(
        "plugbox_attack_jobs:memory_bomb",
        workspace,
        permissions=quotas(memory_mb=96, timeout_ms=20_000),
    )
    outcome = ran.outcome
    # 16 MiB a step outruns a 50 ms sampling interval now and then: either the watchdog's kill
    # or RLIMIT_AS's MemoryError ends it (there is no cgroup OOM kill to do it).
    if outcome.status == "killed":
        assert outcome.kill_reason == "memory"
    else:
        assert outcome.status == "failed", outcome
        assert outcome.error is not None and outcome.error.type == "MemoryError"
    assert outcome.enforcement.memory == "best-effort"
    assert ran.survivors == []


def test_memory_growing_past_the_quota_is_killed_by_the_watchdog(
    host: Host, workspace: Path
) -> None:
    ran = host.run(
        "plugbox_unprivileged_jobs:memory_creep",
        workspace,
        permissions=quotas(memory_mb=96, timeout_ms=30_000),
    )
    assert (ran.outcome.status, ran.outcome.kill_reason) == ("killed", "memory"), ran.outcome
    assert ran.outcome.peak_memory_mb > 96
    assert ran.survivors == []


def test_one_allocation_past_the_address_space_limit_is_a_memory_error(
    host: Host, workspace: Path
) -> None:
    # RLIMIT_AS allows 4 x memory_mb + 512 MiB of new address space: 896 MiB for 96.
    ran = host.run(
        "plugbox_unprivileged_jobs:allocate_at_once",
        workspace,
        permissions=quotas(memory_mb=96, timeout_ms=20_000),
        config={"mb": 2048},
    )
    assert ran.outcome.status == "failed", ran.outcome
    assert ran.outcome.error is not None and ran.outcome.error.type == "MemoryError"


def test_limits_cannot_be_raised_from_inside_the_user_namespace(
    host: Host, workspace: Path
) -> None:
    # The child keeps only the file-access capabilities of its user namespace (the sandbox drops
    # the rest); raising a hard limit would need CAP_SYS_RESOURCE in the initial one anyway.
    ran = host.run(
        "plugbox_unprivileged_jobs:raise_limits",
        workspace,
        permissions=quotas(memory_mb=96, processes=16),
    )
    assert ran.outcome.result == {
        "refused": {"RLIMIT_AS": "ValueError", "RLIMIT_NPROC": "ValueError"}
    }


def test_a_memfd_is_refused_by_seccomp(host: Host, workspace: Path) -> None:
    # A memfd's pages sit in no resident set, RLIMIT_AS does not bound them, and one sent to
    # itself through a socket is in no descriptor table either: seccomp refuses memfd_create, so
    # the job never holds one (the parent still counts memfds and tmpfs files a process holds,
    # tests/sandbox/limits/test_shmem.py, for machines without seccomp).
    ran = host.run(
        "plugbox_limit_jobs:memfd_hold",
        workspace,
        permissions=quotas(memory_mb=128, processes=64, timeout_ms=30_000),
        config={"mb": 1024, "hold_s": 5},
    )
    assert ran.outcome.status == "failed", ran.outcome
    assert ran.outcome.error is not None and ran.outcome.error.type == "PermissionError"
    assert "memfd_create" in ran.outcome.error.traceback  # the job got as far as the attempt
    assert "Operation not permitted" in ran.outcome.error.message
    assert ran.survivors == []


# The watchdog's view of a process that hides from it (limits/shmem.py), as the host user sees it.
HIDING = """
import ctypes, json, os, sys
from plugbox.sandbox.limits import TreeSampler
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    memfd = os.memfd_create("hidden")
    for _ in range(64):
        os.write(memfd, b"x" * 1048576)
    if sys.argv[1] == "hide":
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: /proc/<pid>/fd is closed
    os.write(ready_w, b"r")
    os.read(go_r, 1)
    os._exit(0)
os.read(ready_r, 1)
usage = TreeSampler(pid, None).sample()
os.write(go_w, b"g")
os.waitpid(pid, 0)
print(json.dumps({"rss_mb": usage.rss_mb, "hidden": usage.hidden}))
"""


def test_a_process_that_hides_its_descriptors_is_reported_hidden(
    user: pwd.struct_passwd, scratch: Path
) -> None:
    """Not dumpable, a process's fd and smaps need ptrace rights the unprivileged host lacks: its
    memfds cannot be counted, so the sample says so instead of reporting them as nothing."""
    python = python_for(user, scratch)

    def sample(mode: str) -> dict[str, Any]:
        done = subprocess.run(
            [python, "-c", HIDING, mode],
            capture_output=True,
            text=True,
            cwd=scratch,
            timeout=60,
            check=True,
            **as_user(user),
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    seen, hiding = sample("show"), sample("hide")
    assert seen["hidden"] == 0 and seen["rss_mb"] >= 64  # the control: the memfd is counted
    assert hiding["hidden"] == 1
    assert hiding["rss_mb"] < 64  # what the watchdog cannot see, which is why it says hidden


def test_a_run_near_its_process_limit_leaves_a_concurrent_run_its_own(
    host: Host, workspace: Path
) -> None:
    """RLIMIT_NPROC counts per uid and user namespace, and every run has the host's uid: each run
    child enters a user namespace of its own (limits/run_userns.py) so one run's tasks do not
    use up another's allowance."""
    limit = quotas(processes=64, timeout_ms=30_000)
    busy, other = host.together(
        [
            # Starts threads until its own limit stops it, and holds them.
            {
                "handler": "plugbox_limit_jobs:hold_threads",
                "workspace": workspace,
                "permissions": limit,
                "config": {"count": 200, "hold_s": 4, "holding": ".plugbox/t/holding"},
            },
            # Starts its threads while they are held (it waits for the busy run's marker).
            {
                "handler": "plugbox_limit_jobs:hold_threads",
                "workspace": workspace,
                "permissions": limit,
                "config": {"count": 20, "wait_for": ".plugbox/t/holding"},
                "after_s": 0.5,
            },
        ]
    )
    assert busy.status == "success", busy.error
    # The control: the busy run's own limit still holds it (its main thread counts too).
    assert busy.result["error"] is not None  # type: ignore[index,call-overload]
    assert 50 <= busy.result["started"] < 64  # type: ignore[index,call-overload]
    assert other.status == "success", other.error
    assert other.result == {"started": 20, "error": None, "waited": True}
    # And a run after them forks as well.
    ran = host.run("plugbox_limit_jobs:fork_one", workspace, permissions=limit)
    assert ran.outcome.result == {"forked": True, "errno": None}


def test_fork_bomb_is_bounded(host: Host, workspace: Path) -> None:
    ran = host.run(
        "plugbox_attack_jobs:fork_bomb",
        workspace,
        permissions=quotas(processes=16, timeout_ms=20_000),
    )
    outcome = ran.outcome
    if outcome.status == "killed":
        assert outcome.kill_reason == "processes"
    else:
        # RLIMIT_NPROC counts the user's tasks in the zygote's user namespace: forks fail first.
        assert outcome.status == "success", outcome.error
        assert outcome.result["children"] < 16  # type: ignore[index,call-overload]
    assert outcome.enforcement.processes == "best-effort"
    assert ran.survivors == []  # the 30 s sleepers were killed with the run


# --- the end of a run: subreaper and kill loop ---------------------------------------------------------
def test_daemon_of_a_run_killed_while_alive_does_not_survive(
    host: Host, user: pwd.struct_passwd, workspace: Path
) -> None:
    # The run child is a subreaper: the setsid'd daemon is re-parented to it, so the kill loop's
    # tree walk finds it although it left the run's session.
    name = daemon_name()
    try:
        ran = host.run(
            "plugbox_unprivileged_jobs:daemonize_then_hang",
            workspace,
            permissions=quotas(timeout_ms=300),
            config={"name": name},
        )
        assert (ran.outcome.status, ran.outcome.kill_reason) == ("timeout", "timeout")
        assert daemon_pid(ran.outcome) > 1  # the daemon was forked (in the run's namespace)
        assert survivors_named(name, user) == []
        assert ran.survivors == []
    finally:
        kill_named(name, user)


def test_no_setsid_daemon_survives_the_run(
    host: Host, user: pwd.struct_passwd, workspace: Path
) -> None:
    """Without a cgroup, a daemon whose run child died first dies with the run's PID namespace
    (its pid 1 was the run child); the zygote's orphan sweep stays underneath."""
    name = daemon_name()
    try:
        # The child returns its result and exits while the parent starts killing: a race.
        for _ in range(5):
            ran = host.run("plugbox_attack_jobs:daemonize", workspace, config={"name": name})
            assert ran.outcome.status == "success", ran.outcome.error
            assert ran.outcome.result["daemon_pid"] > 1  # type: ignore[index,call-overload]
            assert ran.survivors == []
        # The child exits by itself (no result) before the parent kills anything: every time.
        ran = host.run(
            "plugbox_unprivileged_jobs:daemonize_then_exit", workspace, config={"name": name}
        )
        assert ran.outcome.status == "failed"
        assert daemon_pid(ran.outcome) > 1
        assert survivors_named(name, user) == []
    finally:
        kill_named(name, user)


# --- what a job is told: the same as on a root host -----------------------------------------------
def test_a_folder_rule_means_the_folder(host: Host, workspace: Path) -> None:
    rule = perms.Permissions(fs=perms.FsPermissions(mode="readWrite", allow=[".plugbox/t/"]))
    ran = host.run(
        "plugbox_unprivileged_jobs:folder_rule",
        workspace,
        permissions=rule,
        config={"folder": ".plugbox/t"},
    )
    assert ran.outcome.status == "success", ran.outcome.error
    assert ran.outcome.result == {
        "exists": True,
        "is_dir": True,
        "listdir": ["f.txt"],
        "remove": "kernel (Landlock)",  # the folder's entry is in .plugbox, which is not granted
    }


def test_a_refused_connection_names_the_request(host: Host, workspace: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        target = f"127.0.0.1:{closed.getsockname()[1]}"
        ran = host.run(
            "plugbox_unprivileged_jobs:net_error",
            workspace,
            permissions=perms.presets.http_hosts(target),
            config={"url": f"http://{target}/data"},
        )
    assert ran.outcome.status == "success", ran.outcome.error
    assert ran.outcome.result == {
        "type": "OSError",
        "error": f"ConnectionRefusedError: GET http://{target}/data failed: the connection was"
        " refused: nothing listens on that host and port. Check that the service is running and"
        " that the URL's host and port are right.",
    }
