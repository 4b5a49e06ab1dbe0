"""A PID namespace per run: each run child is born as pid 1 of a namespace that holds only its run.

What it gives a run: no other process exists for it. ``kill(pid, 0)``, ``getpriority``,
``sched_getaffinity``, ``pidfd_open`` and every other call that names a pid find nothing outside
the run (ESRCH) — not the host, not the zygote, not a concurrent run of another plugin — so a job
can neither act on another process nor watch when one starts or ends (the seccomp rules that
refuse a foreign pid stay underneath, for machines where this layer is missing). And when the
run child (pid 1) dies, the kernel kills every process left in its namespace: a daemon the job
double-forked cannot outlive the run.

How: the zygote calls ``unshare(CLONE_NEWPID)`` before each ``fork`` — which changes only where
its *next child* is born — and ``setns`` back to its own namespace right after, so the next spawn
can make a fresh one. About 0.04 ms per spawn, measured against a plain fork (782 vs 802
forks/s). Both calls need ``CAP_SYS_ADMIN`` over the user namespace that owns the zygote's PID
namespace.

A root host has it over the host's namespace. An unprivileged zygote has it only in the user
namespace it made for its network namespace (kernel/namespaces.py), and the host's PID namespace
belongs to the initial one: it could make a namespace but never come back (docs/adr/0009). So
there the zygote first makes a PID namespace *its* user namespace owns and becomes its pid 1
(:func:`enter_own`); every run namespace is then made inside it and the per-run path is the same
as on a root host. The process the host started stays behind as a thin waiter: it dies with the
host and takes that namespace — the zygote and every run — with it, and exits when the zygote
does. Inside, ``fork`` returns pids of the zygote's namespace while the host and ``/proc`` name
processes by the host's: :meth:`PidNamespaces.host_pid` translates, once per spawn (~0.03 ms).
Entering costs one ``fork`` at the zygote's start (~2 ms); a trivial run costs what it did without
the layer (``tests/benchmarks/bench_spawn_pidns.py``; docs/adr/0009).

Being pid 1 changes two things for a job: a signal it sends itself with no handler installed
(``os.kill(os.getpid(), SIGTERM)``) is ignored, as for any init; and ``RLIMIT_CPU``'s SIGXCPU is
ignored the same way, so the CPU quota is enforced by the hard limit's SIGKILL one second later
and by the parent's watchdog. The unprivileged zygote is an init too: from the host only SIGKILL
and SIGSTOP reach it (its parent asks it to stop over its socket).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from plugbox.sandbox._libc import LIBC, set_process_name
from plugbox.sandbox.limits.procfs import pidfd_pid
from plugbox.sandbox.limits.reaper import die_with_parent

__all__ = ["PidNamespaces", "enter_own"]

CLONE_NEWPID = 0x20000000


@dataclass(slots=True)
class PidNamespaces:
    """The zygote's switch for "the next child is born in a new PID namespace"."""

    home: int | None
    reason: str
    #: The zygote is pid 1 of a namespace of its own (:func:`enter_own`): its pids are not /proc's.
    own: bool = False

    @property
    def active(self) -> bool:
        return self.home is not None

    @classmethod
    def for_zygote(cls, *, own_userns: bool, close: Iterable[int] = ()) -> PidNamespaces:
        """The zygote's namespaces, entering one of its own first where the host's is out of
        reach and the zygote owns its user namespace (``close``: fds the waiter must not hold)."""
        namespaces = cls.open()
        if namespaces.active or not own_userns:
            return namespaces
        try:
            # Inside, every spawn's pid is translated (host_pid): make sure it can be, first.
            if _pidfd_host_pid(os.getpid()) != os.getpid():
                raise OSError(errno.ENOTSUP, "a pidfd's fdinfo names no pid on this kernel")
            enter_own(close=close)
        except OSError as err:
            return cls(None, f"no PID namespace of the zygote's own: {err.strerror or err}")
        return cls.open(own=True)

    @classmethod
    def open(cls, *, own: bool = False) -> PidNamespaces:
        """Probe once, in the zygote: can this process make a namespace and come back?"""
        if LIBC is None:
            return cls(None, "PID namespaces are Linux-only")
        try:
            home = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            return cls(None, f"cannot open /proc/self/ns/pid: {err.strerror}")
        namespaces = cls(home, "", own)
        try:
            # Coming back first: an unprivileged zygote can make a namespace (it owns its user
            # namespace) but not return to the host's, and must then never have made one.
            namespaces.after_fork()
            namespaces.before_fork()
            namespaces.after_fork()
        except OSError as err:
            os.close(home)
            hint = (
                " (needs CAP_SYS_ADMIN over the host's PID namespace, or a user namespace of the "
                "sandbox's own: run the host as root, or allow unprivileged user namespaces)"
                if err.errno == errno.EPERM
                else ""
            )
            return cls(None, f"{err.strerror}{hint}")
        return namespaces

    def before_fork(self) -> None:
        """Make the calling process's next child pid 1 of a new namespace."""
        if self.home is None or LIBC is None:
            return
        if LIBC.unshare(CLONE_NEWPID) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWPID): {os.strerror(err)}")

    def after_fork(self) -> None:
        """Back to the zygote's own namespace, so the next spawn can make a fresh one."""
        if self.home is None or LIBC is None:
            return
        if LIBC.setns(self.home, CLONE_NEWPID) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns(CLONE_NEWPID): {os.strerror(err)}")

    def host_pid(self, child: int) -> int:
        """``child`` (a pid ``fork`` returned, not yet reaped) as the host and ``/proc`` name it.

        The pidfd pins the very process, so the number read back is its own, whatever exits.
        """
        return _pidfd_host_pid(child) if self.own else child


def _pidfd_host_pid(pid: int) -> int:
    pidfd = os.pidfd_open(pid)
    try:
        return pidfd_pid(pidfd)
    finally:
        os.close(pidfd)


def enter_own(*, close: Iterable[int] = ()) -> None:
    """Make the caller pid 1 of a new PID namespace owned by its (own) user namespace.

    Returns in a forked process — the new pid 1. The calling process stays behind as its waiter
    and never returns: it closes ``close`` (the zygote's socket, so the host sees the zygote's
    end when the zygote ends), waits for the new process and exits as it did; when the waiter
    dies (the host killed it, or died and took it along), the kernel kills the new process and,
    with it, everything in its namespace. The caller must be single-threaded.
    """
    if LIBC is None:
        raise OSError(errno.ENOSYS, "PID namespaces are Linux-only")
    if LIBC.unshare(CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWPID): {os.strerror(err)}")
    alive_r, alive_w = os.pipe()  # the waiter holds the write end for as long as it lives
    child = os.fork()
    if child != 0:
        os.close(alive_r)
        _wait_as_waiter(child, close)
    os.close(alive_w)
    die_with_parent(0)  # pid 1 has no parent in its namespace: getppid() is 0
    # The waiter may have died before that request landed; its end is closed then (EOF).
    gone, _, _ = select.select([alive_r], [], [], 0)
    os.close(alive_r)
    if gone:
        os._exit(1)


def _wait_as_waiter(child: int, close: Iterable[int]) -> NoReturn:
    set_process_name("plugbox-pidns")
    for fd in close:
        os.close(fd)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)
