"""Real child processes for the limits tests: fork, run an attack, report back, always end.

Every attack runs in a forked child of the test process (no mocks): the child gets the limit, runs
the attack and sends a JSON result through a pipe; the parent reads how it ended. Bombs also carry
an outer safety net (:func:`safety_net`) so that a limit that fails cannot hurt the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from plugbox.sandbox.limits import RunCgroup, cgroup_support
from plugbox.sdk.permissions import Quotas

MIB = 1024 * 1024
SAFETY_MB = 256


@dataclass(frozen=True)
class Ended:
    """How a forked child ended and what it reported (``None`` if it died before reporting)."""

    pid: int
    status: int
    result: Any
    seconds: float
    cpu_seconds: float  # the child's own user + system time (not its children's)

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None


#: In a forked child, the environment variable naming the descriptor its result goes to.
REPORT_FD = "PLUGBOX_TEST_REPORT_FD"


class Forked:
    """Start ``fn`` in a forked child; :meth:`wait` for it. A started child is always reaped."""

    def __init__(self) -> None:
        self._live: list[int] = []

    def start(self, fn: Callable[[], Any]) -> Started:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 0
            try:
                # A test that must start from few descriptors keeps this one, the report pipe.
                os.environ[REPORT_FD] = str(write_end)
                payload: Any = fn()
            except BaseException as exc:  # everything is reported to the parent
                payload = {
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "tb": traceback.format_exc(),
                }
                code = 1
            try:
                data = json.dumps(payload).encode()
                os.write(write_end, len(data).to_bytes(4, "big") + data)
            finally:
                os._exit(code)
        os.close(write_end)
        self._live.append(pid)
        return Started(self, pid, read_end, time.monotonic())

    def __call__(self, fn: Callable[[], Any], *, timeout: float = 5.0) -> Ended:
        return self.start(fn).wait(timeout)

    def _reaped(self, pid: int) -> None:
        self._live.remove(pid)

    def cleanup(self) -> None:
        for pid in list(self._live):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
        self._live.clear()


@dataclass
class Started:
    owner: Forked
    pid: int
    fd: int
    began: float

    def wait(self, timeout: float = 5.0) -> Ended:
        deadline = self.began + timeout
        while True:
            done, status, usage = os.wait4(self.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.owner._reaped(self.pid)
                os.close(self.fd)
                pytest.fail(f"child {self.pid} did not finish within {timeout} s")
            time.sleep(0.002)
        seconds = time.monotonic() - self.began
        self.owner._reaped(self.pid)
        # Not "read until EOF": the child's own children inherit the pipe and may outlive it.
        # The child wrote one length-prefixed message (small: it fits the pipe) before exiting.
        os.set_blocking(self.fd, False)
        try:
            raw = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            raw = b""
        os.close(self.fd)
        result = json.loads(raw[4 : 4 + int.from_bytes(raw[:4], "big")]) if raw else None
        return Ended(self.pid, status, result, seconds, usage.ru_utime + usage.ru_stime)


def _safety_net(extra_mb: int = SAFETY_MB) -> None:
    """In a bomb child: cap its address space at what it has mapped now + ``extra_mb``.

    Only hit if the limit under test fails; a test that sees this ``MemoryError`` fails loudly.
    """
    with open("/proc/self/statm", "rb") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    limit = mapped + extra_mb * MIB
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(
            resource.RLIMIT_AS,
            (limit, limit if hard == resource.RLIM_INFINITY else min(hard, limit)),
        )


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """True when ``pid`` no longer runs code (it does not exist, or it is a zombie) within
    ``within_s``: a SIGKILL is delivered when the process is next scheduled, not when ``kill``
    returns, so a process killed a moment ago may still show as running or stopped. Pass 0 to
    ask whether something survived: the answer is then about this instant."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            return True
        if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _wait_for_file(path: str, timeout: float = 3.0) -> str:
    """Wait for a marker file a child writes (ending in a newline), return its content."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ""
        if text.endswith("\n"):
            return text.strip()
        time.sleep(0.005)
    pytest.fail(f"{path} was not written within {timeout} s")


@pytest.fixture
def forked() -> Iterator[Forked]:
    runner = Forked()
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def safety_net() -> Callable[..., None]:
    return _safety_net


@pytest.fixture
def gone() -> Callable[..., bool]:
    return _gone


@pytest.fixture
def wait_for_file() -> Callable[..., str]:
    return _wait_for_file


@pytest.fixture(params=["unified", "v1"])
def layout(request: pytest.FixtureRequest) -> str:
    """ "unified": what the probe prefers (hybrid v1+v2 here: cgroup.kill, cpu.stat);
    "v1": the v1 controllers alone (freezer-based kill, cpuacct)."""
    if request.param == "v1" and not _v1_layout_differs():
        pytest.skip("no cgroup2 hierarchy here: the v1 layout is the only one")
    return str(request.param)


def _v1_layout_differs() -> bool:
    return "hybrid" in cgroup_support().detail


@pytest.fixture
def make_cgroup() -> Iterator[Callable[..., RunCgroup]]:
    """Create run cgroups; on teardown close them and check that no directory is left."""
    made: list[RunCgroup] = []

    def make(quotas: Quotas, layout: str = "unified", run_id: str = "test") -> RunCgroup:
        cgroup = RunCgroup.create(run_id, quotas, unified=layout == "unified")
        assert cgroup is not None, cgroup_support().detail
        made.append(cgroup)
        return cgroup

    yield make
    for cgroup in made:
        cgroup.close()
        assert not any(path.exists() for path in cgroup.paths), cgroup.paths
