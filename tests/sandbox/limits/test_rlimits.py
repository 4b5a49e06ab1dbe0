"""Per-process rlimits: each attack runs in a real forked child under ``apply_rlimits``."""

from __future__ import annotations

import errno
import faulthandler
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from plugbox.sandbox.limits import address_space_limit, apply_rlimits
from plugbox.sandbox.limits.rlimits import AS_HEADROOM_MB, AS_MULTIPLE, MIB
from plugbox.sdk.permissions import Quotas

from .conftest import REPORT_FD

if TYPE_CHECKING:
    from .conftest import Forked

pytestmark = pytest.mark.skipif(os.name != "posix", reason="rlimits are POSIX")

ROOT = os.geteuid() == 0


def test_unset_quotas_change_nothing_but_core_dumps(forked: Forked) -> None:
    def child() -> dict[str, Any]:
        names = ("RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_AS")
        before = {n: resource.getrlimit(getattr(resource, n)) for n in names}
        apply_rlimits(Quotas())
        after = {n: resource.getrlimit(getattr(resource, n)) for n in names}
        return {"same": before == after, "core": resource.getrlimit(resource.RLIMIT_CORE)}

    ended = forked(child)
    assert ended.result == {"same": True, "core": [0, 0]}


def test_core_dumps_are_off_even_when_the_host_allows_them(forked: Forked, tmp_path: Path) -> None:
    """A crash (SIGABRT) leaves no core file in the working directory — the job's workspace."""

    def crash(apply: bool) -> None:
        os.chdir(tmp_path)
        resource.setrlimit(resource.RLIMIT_CORE, (MIB, MIB))  # the host allows small cores...
        if apply:
            apply_rlimits(Quotas())  # ...the run does not
        faulthandler.disable()  # pytest's handler would print a traceback for the SIGABRT
        os.abort()

    control = forked(lambda: crash(apply=False))
    if not os.WCOREDUMP(control.status):
        pytest.skip("this machine writes no core files at all (core_pattern or RLIMIT_CORE hard 0)")
    for core in tmp_path.glob("core*"):
        core.unlink()

    ended = forked(lambda: crash(apply=True))
    assert ended.signal == signal.SIGABRT
    assert not os.WCOREDUMP(ended.status)
    assert list(tmp_path.glob("core*")) == []


def test_cpu_spin_is_stopped_by_sigxcpu(forked: Forked) -> None:
    def spin() -> None:
        apply_rlimits(Quotas(cpu_ms=500))
        while True:
            pass

    ended = forked(spin, timeout=15)  # 1 s of CPU; more wall time on a busy machine
    assert ended.signal == signal.SIGXCPU
    # ceil(500 ms) = 1 s; rusage and the rlimit check sample CPU differently, ~10% apart under load
    assert 0.8 < ended.cpu_seconds < 1.5


def test_cpu_spin_that_ignores_sigxcpu_is_killed_a_second_later(forked: Forked) -> None:
    def spin() -> None:
        apply_rlimits(Quotas(cpu_ms=500))
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True:
            pass

    ended = forked(spin, timeout=15)
    assert ended.signal == signal.SIGKILL
    assert 1.6 < ended.cpu_seconds < 2.5  # hard limit = soft + 1 s (same sampling caveat)


def test_fd_exhaustion_fails_with_emfile(forked: Forked) -> None:
    def exhaust() -> dict[str, int]:
        # Descriptors inherited from pytest (other fixtures' sockets, a browser's pipes) would
        # take the low numbers the limit leaves: keep only stdio and the report pipe.
        report = int(os.environ[REPORT_FD])
        os.closerange(3, report)
        os.closerange(report + 1, 4096)
        apply_rlimits(Quotas(open_files=32))
        highest = -1
        try:
            while True:
                highest = max(highest, os.open(os.devnull, os.O_RDONLY))
        except OSError as err:
            return {"errno": err.errno or 0, "highest": highest, "report": report}

    ended = forked(exhaust)
    assert ended.result["errno"] == errno.EMFILE
    # Every number below the limit of 32 was handed out but the report pipe's, which is wherever
    # the test process's own descriptors put it (fd 31 is possible).
    assert ended.result["highest"] == max(set(range(3, 32)) - {ended.result["report"]})


def test_writing_past_file_size_fails_with_efbig(forked: Forked, tmp_path: Path) -> None:
    """Python ignores SIGXFSZ, so the write fails instead of killing the process. ``subprocess``
    puts SIGXFSZ back to its default before ``execve`` (``restore_signals=True``), so a program
    the job starts that way is *killed* by SIGXFSZ at the limit instead: stopped either way."""
    target = tmp_path / "big"

    def write() -> dict[str, Any]:
        apply_rlimits(Quotas(file_size_mb=1))
        report: dict[str, Any] = {
            "sigxfsz_ignored": signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        }
        try:
            with open(target, "wb", buffering=0) as handle:
                for _ in range(4):
                    handle.write(b"x" * (MIB // 2))
        except OSError as err:
            report["errno"] = err.errno
        shell = subprocess.run(
            ["head", "-c", str(2 * MIB), "/dev/zero"],
            stdout=open(tmp_path / "big2", "wb"),  # noqa: SIM115 - closed with the child
            check=False,
        )
        report["program_returncode"] = shell.returncode
        return report

    ended = forked(write)
    assert ended.result == {
        "sigxfsz_ignored": True,
        "errno": errno.EFBIG,
        "program_returncode": -signal.SIGXFSZ,
    }
    assert target.stat().st_size == MIB
    assert (tmp_path / "big2").stat().st_size == MIB


def test_one_huge_allocation_is_a_friendly_memory_error(forked: Forked) -> None:
    """``RLIMIT_AS`` refuses a single oversized allocation at once (nothing is touched), while
    leaving room for a job that uses twice its ``memory_mb`` of address space."""

    def allocate() -> dict[str, Any]:
        with open("/proc/self/statm", "rb") as statm:
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        apply_rlimits(Quotas(memory_mb=64))
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        fits = bytearray(128 * MIB)  # 2 x memory_mb of address space is fine
        del fits
        try:
            bytearray(2048 * MIB)
        except MemoryError:
            return {"memory_error": True, "allowed_mb": (soft - mapped) / MIB}
        return {"memory_error": False}

    ended = forked(allocate)
    assert ended.result["memory_error"] is True
    expected = AS_MULTIPLE * 64 + AS_HEADROOM_MB
    assert expected <= ended.result["allowed_mb"] < expected + 8  # + what the probe itself mapped


def test_threads_still_start_under_the_address_space_limit(forked: Forked) -> None:
    """glibc reserves 64 MiB of address space per malloc arena (up to 8 per core); unchecked, a
    pool of 16 allocating threads exhausts a 64 MB quota's limit and ``Thread.start`` fails."""

    def pool() -> dict[str, Any]:
        apply_rlimits(Quotas(memory_mb=64))
        release = threading.Event()
        errors: list[str] = []

        def work() -> None:
            try:
                keep = [bytearray(1000) for _ in range(200)]
                release.wait(5)
                del keep
            except MemoryError as err:
                errors.append(repr(err))

        threads = [threading.Thread(target=work) for _ in range(32)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        release.set()
        for thread in threads:
            thread.join()
        return {"started": len(threads), "errors": errors}

    ended = forked(pool)
    assert ended.result == {"started": 32, "errors": []}


def test_the_address_space_limit_is_relative_to_what_is_mapped() -> None:
    base = 100 * MIB
    assert address_space_limit(64, base) == base + (AS_MULTIPLE * 64 + AS_HEADROOM_MB) * MIB
    assert address_space_limit(1, 0) == (AS_MULTIPLE + AS_HEADROOM_MB) * MIB


@pytest.mark.parametrize(("cpu_ms", "soft"), [(1, 1), (1000, 1), (1001, 2), (2500, 3)])
def test_cpu_limit_rounds_up_to_whole_seconds(forked: Forked, cpu_ms: int, soft: int) -> None:
    def limits() -> list[int]:
        apply_rlimits(Quotas(cpu_ms=cpu_ms))
        return list(resource.getrlimit(resource.RLIMIT_CPU))

    assert forked(limits).result == [soft, soft + 1]


@pytest.mark.skipif(not ROOT, reason="only root holds CAP_SYS_RESOURCE")
def test_a_root_child_cannot_raise_its_limits_again(forked: Forked) -> None:
    """Root may raise hard limits — unless it lost CAP_SYS_RESOURCE, which apply_rlimits drops."""

    def escape() -> dict[str, Any]:
        apply_rlimits(Quotas(cpu_ms=500, open_files=64))
        report: dict[str, Any] = {}
        for name in ("RLIMIT_CPU", "RLIMIT_NOFILE"):
            which = getattr(resource, name)
            try:
                resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                report[name] = "raised"
            except (ValueError, PermissionError) as err:
                report[name] = type(err).__name__
        status = Path("/proc/self/status").read_text()
        caps = {
            line.split(":")[0]: int(line.split()[1], 16)
            for line in status.splitlines()
            if line.startswith("Cap")
        }
        report["cap_sys_resource"] = {k: bool(v >> 24 & 1) for k, v in caps.items()}
        return report

    ended = forked(escape)
    assert ended.result["RLIMIT_CPU"] == "ValueError"  # "not allowed to raise maximum limit"
    assert ended.result["RLIMIT_NOFILE"] == "ValueError"
    assert not any(ended.result["cap_sys_resource"].values())


@pytest.mark.skipif(not ROOT, reason="shows the root case")
def test_rlimit_nproc_is_ignored_for_root(forked: Forked) -> None:
    """Documented limitation: the kernel never applies RLIMIT_NPROC to uid 0 (not even without
    CAP_SYS_RESOURCE), so process caps for root children come from the pids cgroup alone."""

    def fork_ten() -> int:
        apply_rlimits(Quotas(processes=3))
        children = []
        for _ in range(10):
            pid = os.fork()
            if pid == 0:
                time.sleep(1)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return len(children)

    ended = forked(fork_ten)
    assert ended.result == 10


@pytest.mark.skipif(not ROOT, reason="switching to an unprivileged uid needs root")
def test_rlimit_nproc_applies_to_an_unprivileged_user(forked: Forked) -> None:
    """As an unprivileged uid the same limit holds: the fork that would exceed it fails EAGAIN.

    A fresh uid that owns no other process (no passwd entry needed): RLIMIT_NPROC counts every
    task of the *user*, machine-wide, so a shared uid such as ``nobody`` would share the budget.
    """
    uid = 2_000_000 + os.getpid() % 100_000

    def fork_until_refused() -> dict[str, int]:
        apply_rlimits(Quotas(processes=5))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        children = []
        error = 0
        try:
            for _ in range(20):
                pid = os.fork()
                if pid == 0:
                    time.sleep(2)
                    os._exit(0)
                children.append(pid)
        except OSError as err:
            error = err.errno or 0
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return {"forked": len(children), "errno": error}

    ended = forked(fork_until_refused)
    assert ended.result == {"forked": 4, "errno": errno.EAGAIN}  # 5 tasks: the child and 4 more
