"""The PID namespace layer as the zygote uses it, as root and as an unprivileged user.

A forked child stands in for the zygote: it makes its network namespace the way the zygote does
(``unshare_network``), takes :meth:`PidNamespaces.for_zygote` — unprivileged, that makes it pid 1
of a namespace of its own and leaves the process pytest forked behind as its waiter — and forks a
run child the way ``zygote._spawn`` does. The run child looks for the host; the parent checks the
pid it was told against what ``/proc`` says.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import signal
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from plugbox.sandbox.kernel import namespaces
from plugbox.sandbox.kernel.namespaces import unshare_network
from plugbox.sandbox.kernel.pid_namespace import PidNamespaces
from plugbox.sandbox.limits import procfs
from plugbox.sandbox.limits.procfs import own_pid
from plugbox.sandbox.limits.reaper import become_subreaper, kill_orphans

from .conftest import errno_of, in_child
from .test_namespaces import _drop_to, _userns_blocked_reason

pytestmark = pytest.mark.skipif(
    not namespaces.network_namespace_available(),
    reason=f"no network namespace here: {namespaces.probe_network()[1]}",
)


@pytest.fixture(params=["root", "unprivileged"])
def user(request: pytest.FixtureRequest) -> pwd.struct_passwd | None:
    """``None``: stay root; else the unprivileged user the child drops to."""
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the root path needs root")
        return None
    return unprivileged()


def unprivileged() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    reason = _userns_blocked_reason()
    if reason:
        pytest.skip(reason)
    for name in ("plugbox-test", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.skip("no unprivileged user")


def as_zygote(user: pwd.struct_passwd | None) -> PidNamespaces:
    """What zygote.serve does before its first spawn (unprivileged: this process forks)."""
    if user is not None:
        _drop_to(user)
    how = unshare_network()
    return PidNamespaces.for_zygote(own_userns=how == "userns+netns")


def spawn(pid_namespaces: PidNamespaces, body: Any) -> tuple[int, int]:
    """Fork a run child as zygote._spawn does; its own pid and the host's for it."""
    pid_namespaces.before_fork()
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    pid_namespaces.after_fork()
    return pid, pid_namespaces.host_pid(pid)


def nspid(pid: int) -> list[int]:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("NSpid:"))
    return [int(n) for n in line.split()[1:]]


def test_a_run_child_is_pid_1_and_finds_no_other_process(user: pwd.struct_passwd | None) -> None:
    host = os.getpid()  # pytest: a process of another uid (root) or of the same one, either way

    def zygote() -> dict[str, Any]:
        pid_namespaces = as_zygote(user)
        read_end, write_end = os.pipe()

        def run() -> None:
            seen = {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "kill_host": errno_of(lambda: os.kill(host, 0)),
                "kill_self": errno_of(lambda: os.kill(os.getpid(), 0)),  # the control
                "pidfd_host": errno_of(lambda: os.close(os.pidfd_open(host))),
            }
            os.write(write_end, json.dumps(seen).encode())

        pid, host_pid = spawn(pid_namespaces, run)
        os.close(write_end)
        seen = json.loads(os.read(read_end, 4096))
        facts = {"nspid": nspid(host_pid), "ours": pid, "host_pid": host_pid}
        os.waitpid(pid, 0)
        return {
            "active": pid_namespaces.active,
            "own": pid_namespaces.own,
            "zygote": (os.getpid(), own_pid()),
            "run": seen,
            **facts,
        }

    got = in_child(zygote).unwrap()
    assert got["active"] is True
    assert got["run"] == {
        "pid": 1,
        "ppid": 0,
        "kill_host": errno.ESRCH,
        "kill_self": 0,
        "pidfd_host": errno.ESRCH,
    }
    # The pid the zygote tells the host is the run child's pid as /proc names it.
    assert got["nspid"][0] == got["host_pid"] and got["nspid"][-1] == 1
    if user is None:
        assert got["own"] is False and got["zygote"][0] == got["zygote"][1]
        assert got["nspid"] == [got["host_pid"], 1]
    else:
        # The zygote is pid 1 of its own namespace; its fork returns that namespace's pids.
        assert got["own"] is True and got["zygote"][0] == 1 and got["zygote"][1] > 1
        assert got["nspid"] == [got["host_pid"], got["ours"], 1]


def test_orphans_of_the_zygote_are_killed_and_a_run_is_kept(user: pwd.struct_passwd | None) -> None:
    def zygote() -> dict[str, Any]:
        pid_namespaces = as_zygote(user)
        become_subreaper()
        run, run_host = spawn(pid_namespaces, lambda: time.sleep(60))
        # An orphan: a child that forks and exits, so the grandchild comes up to this process.
        read_end, write_end = os.pipe()
        middle = os.fork()
        if middle == 0:
            if os.fork() == 0:
                os.write(write_end, str(own_pid()).encode())
                time.sleep(60)
                os._exit(0)
            os._exit(0)
        os.waitpid(middle, 0)
        os.close(write_end)
        orphan = int(os.read(read_end, 64))
        # Asked for the first time in here, as the zygote does: /proc's thread files are found
        # (else every children() would scan the whole machine: 140 opens a run, measured).
        procfs._has_children_files.cache_clear()
        found_children_files = procfs._has_children_files()
        killed = kill_orphans(keep=[run_host])
        # kill_orphans reaped it: it is not even a zombie any more.
        orphan_gone = not os.path.exists(f"/proc/{orphan}")
        run_alive = psutil.Process(run_host).status() != psutil.STATUS_ZOMBIE
        os.kill(run, signal.SIGKILL)
        os.waitpid(run, 0)
        return {
            "killed": killed,
            "orphan_gone": orphan_gone,
            "run_alive": run_alive,
            "children_files": found_children_files,
        }

    assert in_child(zygote).unwrap() == {
        "killed": 1,
        "orphan_gone": True,
        "run_alive": True,
        "children_files": True,
    }


@pytest.fixture
def unprivileged_zygote() -> Iterator[tuple[int, dict[str, int]]]:
    """A zygote in a namespace of its own with one sleeping run child: the waiter's pid (this
    process's child) and the host pids of the zygote and the run."""
    user = unprivileged()
    read_end, write_end = os.pipe()
    waiter = os.fork()
    if waiter == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            pid_namespaces = as_zygote(user)
            _, run = spawn(pid_namespaces, lambda: time.sleep(600))
            os.write(write_end, json.dumps({"zygote": own_pid(), "run": run}).encode())
            time.sleep(600)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        yield waiter, json.loads(os.read(read_end, 4096))
    finally:
        os.close(read_end)
        with contextlib.suppress(ProcessLookupError):
            os.kill(waiter, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(waiter, 0)


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def test_killing_the_waiter_takes_the_zygote_and_its_runs(
    unprivileged_zygote: tuple[int, dict[str, int]],
) -> None:
    waiter, pids = unprivileged_zygote
    assert psutil.Process(pids["zygote"]).ppid() == waiter  # the control: all three are there
    assert nspid(pids["run"])[-1] == 1
    os.kill(waiter, signal.SIGKILL)  # what the host's death or ZygoteClient.close does
    assert gone(pids["zygote"]) and gone(pids["run"])


def test_the_waiter_exits_when_the_zygote_dies(
    unprivileged_zygote: tuple[int, dict[str, int]],
) -> None:
    waiter, pids = unprivileged_zygote
    os.kill(pids["zygote"], signal.SIGKILL)  # from outside its namespace, SIGKILL reaches pid 1
    _, status = os.waitpid(waiter, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGKILL
    assert gone(pids["run"])  # the namespace ended with its pid 1
