"""The parent's end of the zygote: starting it isolated, asking it to fork, hearing who exited.

:class:`ZygoteClient` owns the zygote process and its socket. A thread reads the zygote's
replies and hands each to the spawn or run waiting for it. A spawn that gets no answer in time
is given up — its id forgotten under the same lock the reply is handed over with, so a reply
that comes late finds nobody and its child is killed — and a zygote that died is started again
on the next spawn.

The zygote runs isolated (``python -I``: no script directory or working directory on
``sys.path``, no ``PYTHON*`` variables, no user site) from ``/``, so nothing a job can write is
ever on its import path. What the host's own ``sys.path`` adds (a ``PYTHONPATH``, a test
runner's paths) is appended *after* the interpreter's own entries: it can add modules, never
shadow the standard library or plugbox.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import psutil

from plugbox.sandbox.protocol import ProtocolError, receive, send

log = logging.getLogger(__name__)

_BOOTSTRAP = (
    "import sys; sys.path.extend(p for p in sys.argv[3:] if p not in sys.path); "
    "from plugbox.sandbox.zygote import main; main()"
)


#: The ``exit_message`` of a run whose zygote died before reporting its child's exit.
ZYGOTE_DIED = "zygote_died"


@dataclass(slots=True)
class RunState:
    """What the zygote says about one spawn: its ``spawned`` reply, then its exit."""

    spawned: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    exited: threading.Event = field(default_factory=threading.Event)
    exit_message: dict[str, Any] = field(default_factory=dict)


class ZygoteClient:
    """One zygote process (restarted when it dies) and the spawns waiting on it."""

    def __init__(
        self,
        *,
        cgroups: bool,
        run_as: tuple[int, int] | None = None,
        reach: tuple[str, ...] = (),
    ) -> None:
        self._cgroups = cgroups
        # A root host's run uid and the paths every run needs: the zygote opens the way to them
        # in a mount view of its own (kernel/mount_view.py).
        self._run_as = run_as
        self._reach = reach
        self._send_lock = threading.Lock()  # one writer at a time on the zygote socket
        self._start_lock = threading.Lock()
        # Held while a reply is handed to its spawn or the spawn gives up waiting for it, so a
        # reply is either taken by its spawn or known to have come too late.
        self._handoff = threading.Lock()
        self._spawns: dict[str, RunState] = {}
        self._by_pid: dict[int, RunState] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self.machine: dict[str, Any] = {}
        #: The zygote's host pid (``ready``): not the started process's where the zygote is pid 1
        #: of a PID namespace of its own (kernel/pid_namespace.py), and that process its waiter.
        self.pid: int | None = None

    def start(self) -> bool:
        """Make sure a zygote runs; ``True`` when one was (re)started just now."""
        with self._start_lock:
            if self._process is not None and self._process.poll() is None:
                return False
            if self._process is not None:
                # It died (killed, out of memory): its spawns have failed; start anew.
                log.warning(
                    "the sandbox zygote exited (%s); starting a new one", self._process.returncode
                )
                self._forget()
            self._start()
            return True

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-I", "-c", _BOOTSTRAP, str(theirs.fileno()), str(os.getpid())]
        try:
            self._process = _start_kept([*argv, *_host_path()], theirs.fileno())
        finally:
            theirs.close()
        self._sock = ours
        hello = {"type": "hello", "cgroups": self._cgroups, "run_as": self._run_as}
        send(ours, {**hello, "reach": list(self._reach)})
        ready, _ = receive(ours)
        if ready.get("type") != "ready":
            raise RuntimeError(f"the sandbox zygote did not start: {ready}")
        self.machine = dict(ready["machine"])
        self.pid = int(ready["pid"])
        threading.Thread(
            target=self._demux, args=(ours,), name="plugbox-zygote", daemon=True
        ).start()

    def _forget(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)
            self._process = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                with self._send_lock:
                    send(self._sock, {"type": "shutdown"})
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def fork(
        self, spawn_id: str, spec: str, fds: list[int], timeout: float
    ) -> tuple[int, RunState] | str:
        """Ask for a child of ``spec`` (``fds``: its control socket and output pipe).

        Its pid and state, or why there is none; never waits longer than ``timeout``.
        """
        state = RunState()
        with self._handoff:
            self._spawns[spawn_id] = state
        try:
            sock = self._sock
            if sock is None:
                raise OSError("the zygote is not running")
            with self._send_lock:
                send(sock, {"type": "spawn", "spawn_id": spawn_id, "spec": spec}, fds)
            reply = state.spawned.get(timeout=timeout)
        except (OSError, queue.Empty) as err:
            reply = {"type": "spawn_failed", "error": self._problem(err, timeout)}
        if reply.get("type") == "spawned":
            return int(reply["pid"]), state
        with self._handoff:
            self._spawns.pop(spawn_id, None)
            # The reply may have come between the timeout and this line: its child is ours.
            with contextlib.suppress(queue.Empty):
                late = state.spawned.get_nowait()
                if late.get("type") == "spawned":
                    self._by_pid.pop(int(late["pid"]), None)
                    self._abandon(int(late["pid"]))
        return str(reply.get("error"))

    def forget(self, spawn_id: str) -> None:
        """The spawn's run is over: nothing more to hand it."""
        self._spawns.pop(spawn_id, None)

    def _problem(self, err: Exception, timeout: float) -> str:
        """Why a spawn got no answer, as far as the parent can tell."""
        if isinstance(err, OSError):
            return f"the sandbox zygote cannot be reached ({err.strerror or err})"
        process = self._process
        why = "it is busy preparing other runs, or stuck"
        if process is None or process.poll() is not None:
            why = "the zygote exited"
        else:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(self.pid or process.pid).status() == psutil.STATUS_STOPPED:
                    why = "the zygote process is stopped"
        return (
            f"the sandbox took longer than {timeout:g} s to prepare this run's child "
            f"({why}); the run was not started"
        )

    def _demux(self, sock: socket.socket) -> None:
        while True:
            try:
                message, _ = receive(sock)
            except (EOFError, OSError, ProtocolError):
                with self._handoff:
                    everyone = list(self._spawns.values())
                for state in everyone:
                    state.spawned.put(
                        {"type": "spawn_failed", "error": "the sandbox zygote exited"}
                    )
                    # No exit status will come: the zygote that would reap the child is gone.
                    state.exit_message = {"type": ZYGOTE_DIED}
                    state.exited.set()
                return
            kind = message.get("type")
            if kind in ("spawned", "spawn_failed"):
                with self._handoff:
                    waiting = self._spawns.get(str(message.get("spawn_id")))
                    if waiting is not None:
                        if kind == "spawned":
                            self._by_pid[int(message["pid"])] = waiting
                        waiting.spawned.put(message)
                if waiting is None and kind == "spawned":
                    # Its run gave up waiting (spawn timeout): the child must not linger.
                    self._abandon(int(message["pid"]))
            elif kind == "exited":
                ended = self._by_pid.pop(int(message["pid"]), None)
                if ended is not None:
                    ended.exit_message = message
                    ended.exited.set()

    def _abandon(self, pid: int) -> None:
        """Have the zygote kill a run child nobody waits for (it has not had its go)."""
        sock = self._sock
        if sock is None:
            return
        try:
            with self._send_lock:
                send(sock, {"type": "kill", "pid": pid})
        except OSError:
            pass  # the zygote is gone, and its children with it (PR_SET_PDEATHSIG)


def _start_kept(argv: list[str], fd: int) -> subprocess.Popen[bytes]:
    """Start the zygote from a thread that lives exactly as long as the zygote does.

    The zygote dies with its parent (``PR_SET_PDEATHSIG``), and to the kernel that parent is
    the *thread* that forked it, not the host process: a zygote started by a run's worker
    thread was SIGKILLed, with every run in flight, when that thread ended (a pool recycling
    threads, a host stopping its workers one by one). This thread only waits for the zygote.
    """
    started: queue.Queue[subprocess.Popen[bytes] | BaseException] = queue.Queue(maxsize=1)

    def keep() -> None:
        try:
            process = subprocess.Popen(
                argv,
                pass_fds=[fd],
                env=_environment(),
                cwd="/",
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException as exc:  # handed to the starting thread, which raises it
            started.put(exc)
            return
        started.put(process)
        # Wait for its exit without reaping it (WNOWAIT) and without Popen.wait, which would
        # hold the Popen's lock all along: poll() from other threads would say "running" until
        # this thread got to record the exit, and a dead zygote would not be restarted.
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)

    threading.Thread(target=keep, name="plugbox-zygote-keeper", daemon=True).start()
    outcome = started.get()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _environment() -> dict[str, str]:
    """The zygote starts with no host secrets: only what Python itself needs."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _host_path() -> list[str]:
    """The host's import path entries for the zygote to append after its own.

    Never the empty or a relative entry, nor the working directory or anything below it: that is
    where the host was started — usually the workspace, which jobs write — not where code was
    installed.
    """
    cwd = os.getcwd()
    return [
        entry
        for entry in sys.path
        if entry and os.path.isabs(entry) and not _within(os.path.normpath(entry), cwd)
    ]


def _within(path: str, root: str) -> bool:
    # A host started from "/" names no workspace by it: only "/" itself is left out then.
    return path == root or (root != "/" and path.startswith(root + "/"))
