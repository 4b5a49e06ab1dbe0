"""The few ``/proc`` facts the limits code needs about a process, read straight from the files.

psutil does the job in general, but the watchdog samples every run every 50 ms and psutil's
convenience costs more than the facts: ``Process.children()`` reads ``/proc/<pid>/stat`` of every
process on the machine to build a parent map (2.1 ms with 80 processes on the development
machine), and ``Process.parent()`` builds and verifies a second ``Process`` (0.25 ms). Here one
process costs two small reads (``stat`` and ``status``) and its children one read per thread.

Every reader returns ``None`` (or an empty set) for a process that is gone or unreadable: between
listing a process and reading it, it may exit — the race the callers must never turn into an
exception.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import psutil

__all__ = [
    "Memory",
    "Stat",
    "children",
    "descendants",
    "local_pid",
    "own_pid",
    "pidfd_pid",
    "read_memory",
    "read_stat",
]

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Stat:
    """One process from ``/proc/<pid>/stat``; ``(pid, start)`` names it across pid reuse."""

    pid: int
    ppid: int
    start: int  # start time in clock ticks since boot
    zombie: bool
    cpu_ms: int  # its own CPU plus the CPU of the children it has reaped


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of one process from ``/proc/<pid>/status``, in bytes.

    ``shmem`` is the part of the resident set that maps shared memory (memfd, tmpfs files,
    ``MAP_SHARED | MAP_ANONYMOUS``, SysV segments): pages another process may map too, and only
    those this process has touched through its mappings.
    """

    anon: int
    file: int
    shmem: int

    @property
    def resident(self) -> int:
        return self.anon + self.file + self.shmem


def read_stat(pid: int) -> Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        return Stat(pid, int(fields[1]), int(fields[19]), fields[0] == b"Z", int(ticks * _TICK_MS))
    except (IndexError, ValueError):
        return None


_MEMORY_KEYS = {b"RssAnon:": "anon", b"RssFile:": "file", b"RssShmem:": "shmem"}


def read_memory(pid: int) -> Memory | None:
    """``None`` when the process is gone, or is a zombie or kernel thread (no memory of its own)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            raw = status.read()
    except OSError:
        return None
    found: dict[str, int] = {}
    for line in raw.splitlines():
        key = _MEMORY_KEYS.get(line[:9].rstrip(b" \t"))
        if key is not None:
            with contextlib.suppress(IndexError, ValueError):
                found[key] = int(line.split()[1]) * 1024
    if len(found) != len(_MEMORY_KEYS):
        return None
    return Memory(**found)


def children(pid: int) -> set[int]:
    """The children of ``pid``, from ``/proc/<pid>/task/<tid>/children``.

    A child belongs to the *thread* that forked it, so this costs one read per thread. The kernel
    documents the list as possibly incomplete while children come and go; callers that must be
    exact (the kill loop) stop the tree and walk it again. Without ``CONFIG_PROC_CHILDREN`` it
    falls back to psutil, which scans every process on the machine.
    """
    if not _has_children_files():
        with contextlib.suppress(psutil.Error):
            return {child.pid for child in psutil.Process(pid).children()}
        return set()
    found: set[int] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found  # gone
    for tid in tids:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{tid}/children", "rb") as listed,
        ):
            found.update(int(child) for child in listed.read().split())
    return found


def descendants(root_pid: int) -> list[int]:
    """``root_pid`` (unless it is gone) and every descendant, the root first."""
    found: list[int] = []
    seen: set[int] = set()
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen.add(pid)
        found.append(pid)
        pending.extend(children(pid))
    return found


@functools.cache
def _has_children_files() -> bool:
    """Whether the kernel has ``CONFIG_PROC_CHILDREN`` (most distribution kernels do)."""
    # thread-self, not task/<get_native_id()>: inside a PID namespace of its own (an
    # unprivileged zygote) the thread id is that namespace's, which /proc does not know, and
    # every children() would fall back to psutil's scan of the whole machine.
    return os.path.exists("/proc/thread-self/children")


# -- pids across PID namespaces -------------------------------------------------------------------
# /proc prints every pid in the namespace of its mount (the host's), while fork(), waitpid() and
# kill() speak the caller's own. An unprivileged zygote is pid 1 of a namespace of its own
# (kernel/pid_namespace.py), so there the two differ and these translate.
def own_pid() -> int:
    """The calling process's pid as ``/proc`` names it (``os.getpid()`` inside a namespace)."""
    return int(os.readlink("/proc/self"))


def pidfd_pid(pidfd: int) -> int:
    """The pid, as ``/proc`` names it, of the process ``pidfd`` pins (-1 once it is reaped).

    A pidfd's ``fdinfo`` prints its ``Pid:`` in the namespace of the ``/proc`` it is read through.
    """
    with open(f"/proc/self/fdinfo/{pidfd}", "rb") as info:
        for line in info:
            if line.startswith(b"Pid:"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/fdinfo/{pidfd} has no Pid: line (not a pidfd?)")


def local_pid(pid: int) -> int | None:
    """The caller's own number for process ``pid`` (a ``/proc`` pid); ``None``: gone or not in
    the caller's namespace. The same number where the caller lives in ``/proc``'s namespace."""
    mine, theirs = _nspid("self"), _nspid(str(pid))
    if mine is None or theirs is None or len(theirs) < len(mine):
        return None
    return theirs[len(mine) - 1]


def _nspid(pid: str) -> list[int] | None:
    """``NSpid:`` of ``/proc/<pid>/status``: the pid in each namespace, ``/proc``'s first."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"NSpid:"):
                    return [int(field) for field in line.split()[1:]]
    except (OSError, ValueError):
        return None
    return None
