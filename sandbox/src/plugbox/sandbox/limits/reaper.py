"""Ending a run without cgroups: a subreaper so orphans stay reachable, and a kill loop that wins.

The cgroup (:meth:`.RunCgroup.kill_all`) is the authoritative way to end a run: the kernel knows
every member. This module is the fallback where no cgroup can be made (macOS, no delegation) and a
second line of defence where one can. The hard case is the ``setsid`` double-forked daemon: its
parent exits at once, so it is re-parented away from the run's process tree, and its new session
hides it from a session kill. Linux re-parents orphans to the nearest ancestor marked as a *child
subreaper* instead of to init; so

* the process that forks run children (the zygote) calls :func:`become_subreaper`, and after a
  run ends calls :func:`kill_orphans` with the pids of the runs still going — every other child it
  holds is an orphan of a finished run;
* a run child may call :func:`become_subreaper` too, before any plugin code: then its own orphans
  stay inside its tree for as long as it lives, and :func:`kill_tree` alone finds them.

Pids here are always read by the caller from ``/proc`` — never taken from a message the run sent —
and are ``/proc``'s numbers, which are not the caller's own where it lives in a PID namespace of
its own (an unprivileged zygote, kernel/pid_namespace.py): so every signal goes through the
process's ``/proc/<pid>`` directory, opened as a pidfd *before* the process's identity is checked,
and a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Collection, Iterable

import psutil

from plugbox.sandbox._libc import LIBC
from plugbox.sandbox.limits.procfs import children, descendants, local_pid, own_pid

__all__ = ["become_subreaper", "is_subreaper", "kill_orphans", "kill_tree"]

log = logging.getLogger(__name__)

KILL_TIMEOUT_S = 5.0
STOP_WAIT_S = 0.05

_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>, Linux 3.4
_PR_GET_CHILD_SUBREAPER = 37


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(expected_parent: int) -> None:
    """Get SIGKILL when the parent dies, so nothing outlives the process that watches it.

    The zygote asks this of the host and each run child of the zygote: a host killed with
    SIGKILL takes its zygote and every run child with it. If the parent is already gone by the
    time the request lands (a race the kernel cannot close for us), exit at once. The kernel
    means the parent *thread*, the one that forked: a multi-threaded parent must fork from a
    thread that outlives the child (``zygote_client._start_kept``).
    """
    libc = LIBC
    if libc is not None and libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    # getppid() is 0 for pid 1 of a PID namespace: its parent lives outside it (the zygote).
    if os.getppid() not in (expected_parent, 0):
        os._exit(1)


def become_subreaper() -> bool:
    """Make orphaned descendants of the calling process re-parent to it rather than to init.

    Returns False where the platform has no such thing (anything but Linux): the run still works,
    with :func:`kill_tree` alone to end it. Raises :class:`OSError` if Linux refuses.

    The caller must reap adopted orphans (``waitpid``) or they stay zombies; :func:`kill_orphans`
    does both. The flag is not inherited by children and survives ``execve``.
    """
    libc = LIBC
    if libc is None:
        return False
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")
    return True


def is_subreaper() -> bool:
    """Whether the calling process is a child subreaper (what ``plugbox doctor`` reports)."""
    libc = LIBC
    if libc is None:
        return False
    flag = ctypes.c_int(0)
    # prctl's arguments are typed as unsigned longs (see _libc): the pointer goes as an address.
    if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), 0, 0, 0) != 0:
        return False
    return flag.value != 0


def kill_tree(root_pid: int, *, session_id: int | None = None) -> int:
    """SIGKILL ``root_pid``, all its descendants and every process of session/group ``session_id``.

    Returns how many processes were killed (the root included). Loops until none is left, at
    most ~5 s.

    The race: the tree is read from ``/proc`` one process at a time, so a process may fork after
    its children were listed, and a child killed before its own children were found orphans them
    out of the tree. The loop closes both holes by *stopping* before killing: every member gets
    ``SIGSTOP`` (which cannot be caught or ignored), the walk is repeated until it finds no process
    it had not already stopped — a stopped process can neither fork, nor exit and orphan its
    children, nor wake a stopped sibling — and only then is every member killed. A fork already in
    flight when ``SIGSTOP`` arrives completes first; the next walk finds its child.

    The session is also signalled as a *process group* (``killpg(session_id)``) at the start of
    every round: the kernel delivers a group signal to a fork in flight too (it restarts the fork),
    so a process that forks and exits in a loop to keep changing its pid — faster than ``/proc``
    can be scanned — is stopped where it stands. Pass the run root's pid as ``session_id`` (the
    root called ``setsid``) and call this *before* the root is reaped: its zombie keeps that number
    from being reused for another process group.

    What it cannot see: a descendant that called ``setsid`` and whose parent *exited on its own*
    before this call; that orphan belongs to the nearest subreaper (see the module docstring).
    And a process that leaves the process group *and* hops pids faster than ``/proc`` can be read
    can outrun the walk. The run's cgroup (or a pid namespace) has neither hole; with neither,
    :func:`kill_orphans` in the subreaper is the last line.

    ``session_id`` is for a caller in ``/proc``'s own PID namespace (the host's runner):
    ``killpg`` and ``getsid`` take the caller's numbers.
    """
    if session_id is not None and session_id in (os.getsid(0), os.getpgid(0)):
        raise ValueError(
            f"refusing to kill session/process group {session_id}: the caller is in it"
        )
    protected = _protected()
    killed: set[psutil.Process] = set()
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while True:
        _signal_group(session_id, signal.SIGSTOP)
        members = _members(root_pid, session_id, protected)
        if not members:
            break
        if time.monotonic() > deadline:
            # Out of patience: kill whatever is there without waiting for a quiet tree.
            killed.update(p for p in members if _signal(p, signal.SIGKILL))
            log.warning(
                "processes %s still alive after %.0f s",
                sorted(p.pid for p in members),
                KILL_TIMEOUT_S,
            )
            _wait_until_gone(members)
            if members == _members(root_pid, session_id, protected):
                break  # stuck in the kernel (D state): nothing more to do from here
            continue
        for proc in members:
            _signal(proc, signal.SIGSTOP)
        _wait_until_stopped(members)
        if _members(root_pid, session_id, protected) - members:
            continue  # something was forked meanwhile: stop it too before killing anyone
        for proc in members:
            if _signal(proc, signal.SIGKILL):
                killed.add(proc)
        _signal_group(session_id, signal.SIGKILL)
        _wait_until_gone(members)
    _signal_group(session_id, signal.SIGKILL)  # a stopped straggler that no walk listed
    return len(killed)


def kill_orphans(keep: Collection[int]) -> int:
    """In a subreaper: kill (with their trees) and reap every child whose pid is not in ``keep``.

    ``keep`` holds the pids of runs still in progress. Every other child of a subreaper zygote is
    an orphan adopted from some run — it cannot tell which when several runs are in flight, so an
    orphan of a run still going dies early too (the safe direction). Returns how many processes
    were killed.
    """
    killed = 0
    for child in children(own_pid()) - set(keep):
        ours = local_pid(child)  # waitpid's number for it (readable until it is reaped)
        with contextlib.suppress(psutil.Error):
            if psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
                killed += kill_tree(child)
        if ours is not None:
            _reap(ours)
    return killed


# -- internals ----------------------------------------------------------------------------------
def _members(root_pid: int, session_id: int | None, protected: set[int]) -> set[psutil.Process]:
    """Live (non-zombie) processes of the run: the root's tree plus its session and group."""
    pids = set(descendants(root_pid))
    if session_id is not None:
        for pid in psutil.pids():
            with contextlib.suppress(OSError):
                if os.getsid(pid) == session_id or os.getpgid(pid) == session_id:
                    pids.add(pid)
    live = set()
    for pid in pids - protected:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                live.add(proc)
    return live


def _protected() -> set[int]:
    """The caller and its ancestors: a misdirected session id must never take the host down."""
    pids = {0, 1}
    pid = own_pid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = psutil.Process(pid).ppid()
        except psutil.Error:
            break
    return pids


def _signal(proc: psutil.Process, sig: int) -> bool:
    """Send ``sig`` to exactly the process ``proc`` names, never to a recycled pid."""
    if not hasattr(signal, "pidfd_send_signal"):  # not Linux: psutil checks the start time first
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
            return True
        return False
    try:
        # A /proc/<pid> directory is a pidfd (Linux 5.1), named in /proc's namespace: the
        # caller's own may differ (pidfd_open would look the number up there).
        fd = os.open(f"/proc/{proc.pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        # The pidfd pins one process; if the start time still matches, it is the one we listed.
        if not proc.is_running():
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except (OSError, psutil.Error):
        return False
    finally:
        os.close(fd)


_STOPPED = frozenset({psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP})
_GONE = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD})


def _signal_group(pgid: int | None, sig: int) -> None:
    if pgid is None or pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_until_stopped(members: Iterable[psutil.Process]) -> None:
    # SIGSTOP takes effect when the target next leaves the kernel; one in uninterruptible sleep
    # (D state) may take longer than we wait, and is then killed without having stopped.
    _wait_for(members, _STOPPED | _GONE)


def _wait_until_gone(members: Iterable[psutil.Process]) -> None:
    # Not psutil.wait_procs: for a process that is not our child it polls until the pid
    # disappears, and a zombie waiting for its parent to reap it never does.
    _wait_for(members, _GONE)


def _wait_for(members: Iterable[psutil.Process], states: frozenset[str]) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    pending = set(members)
    while pending:
        for proc in list(pending):
            try:
                if proc.status() in states:
                    pending.discard(proc)
            except psutil.Error:
                pending.discard(proc)
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.0002)


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # reaped elsewhere (the zygote's SIGCHLD loop) or not our child
        if done:
            return
        time.sleep(0.001)
