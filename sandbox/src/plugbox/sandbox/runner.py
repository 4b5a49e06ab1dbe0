"""The one runner API: run a job in a confined child and get back a bounded :class:`Outcome`.

``SandboxRunner`` owns a warm zygote (:mod:`plugbox.sandbox.zygote`). For each run it prepares
the confinement plan, asks the zygote to fork a child, puts the child in the run's cgroup, hands it
the allowed environment, then watches: it answers the child's network requests through the broker,
drains output (truncating, never blocking the child), streams in logs and events, and enforces the
wall timeout, tree-wide CPU and memory, and output volume. When the run ends — however it ends —
every process of the run is killed before the outcome is returned.

Thread-safe: the host's worker pool may call :meth:`SandboxRunner.run` from several threads.
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
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from plugbox.sandbox.accesses import (
    LearningDecider,
    RecordingDecider,
)
from plugbox.sandbox.broker import NetBroker
from plugbox.sandbox.limits.cgroup_pool import CgroupPool
from plugbox.sandbox.limits.cgroups import (
    RunCgroup,
    cgroup_support,
    reap_stale_runs,
    remove_empty_parents,
)
from plugbox.sandbox.net_relay import NetRelay
from plugbox.sandbox.net_request import Responder
from plugbox.sandbox.outcome import (
    Enforcement,
    ErrorInfo,
    Outcome,
    advisory_enforcement,
    capability_levels,
)
from plugbox.sandbox.protocol import ProtocolError, receive, send
from plugbox.sandbox.proxies.env import allowed_environment
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunRequest
from plugbox.sandbox.run_loop import RunIO, watch_run
from plugbox.sandbox.run_watch import RunWatch
from plugbox.sandbox.runner_threads import Cleaner, Warmer, end_run, signal_members
from plugbox.sandbox.spawn_spec import (
    PLACEHOLDER_CONTEXT,
    code_paths,
    spawn_spec,
    workspace_problem,
)
from plugbox.sandbox.workspace import prepare_write_roots
from plugbox.sdk.permissions import Decider, Quotas, effective_policy

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_S = 10.0
#: Distinct jobs that keep a pre-forked child ready.
MAX_WARM = 8
#: Distinct jobs whose spawn spec is kept, built (a dict in insertion order, oldest dropped).
MAX_SPECS = 256
#: How long a run waits for a warm child that is being forked before forking its own.
WARM_WAIT_S = 0.05
# The zygote runs isolated (-I: no script directory or cwd on sys.path, no PYTHON* variables, no
# user site) from "/", so nothing a job can write is ever on its path. What the host's own
# sys.path adds (a PYTHONPATH, a test runner's paths) is appended *after* the interpreter's own
# entries: it can add modules, never shadow the standard library or plugbox.
_ZYGOTE_BOOTSTRAP = (
    "import sys; sys.path.extend(p for p in sys.argv[3:] if p not in sys.path); "
    "from plugbox.sandbox.zygote import main; main()"
)


@dataclass(slots=True)
class _RunState:
    spawned: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    exited: threading.Event = field(default_factory=threading.Event)
    exit_message: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Child:
    """A forked, confined child waiting for its go (cold, or warm from the pool)."""

    spawn_id: str
    pid: int
    control: socket.socket
    out_r: int
    cgroup: RunCgroup | None
    state: _RunState


def _warm_key(request: RunRequest, quotas: Quotas) -> str:
    """Runs with the same key can share a warm child: everything but context and environment."""
    shape = request.model_copy(update={"context": PLACEHOLDER_CONTEXT, "environment": {}})
    return shape.model_dump_json() + quotas.model_dump_json()


class SandboxRunner:
    """Runs jobs in confined child processes forked from a warm zygote.

    ``prewarm`` keeps a child forked and confined for the next run of each job that ran (the
    ~1 ms a scheduler saves per run); a test suite whose every test has a new workspace never
    reuses one, and turns it off.
    """

    def __init__(self, *, defaults: Quotas = DEFAULT_QUOTAS, prewarm: bool = True) -> None:
        self._defaults = defaults
        self._prewarm_enabled = prewarm
        self._cgroups = cgroup_support()
        self._lock = threading.Lock()  # one writer at a time on the zygote socket
        self._start_lock = threading.Lock()
        # Held while a spawn reply is handed to its run or the run gives up waiting for it, so a
        # reply is either taken by its run or known to have come too late.
        self._handoff = threading.Lock()
        self._runs: dict[str, _RunState] = {}
        self._by_pid: dict[int, _RunState] = {}
        self._zygote: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._machine: dict[str, Any] = {}
        self._system_paths = code_paths()
        self._cgroup_pool = CgroupPool()
        self._cleaner = Cleaner(self._cgroup_pool)
        self._warm: dict[str, _Child] = {}
        self._specs: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._enforcement_cache: dict[bool, Enforcement] = {}
        self._warm_lock = threading.Lock()
        self._warming: dict[str, threading.Event] = {}
        self._closing = False
        self._warmer = Warmer(self._prewarm)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SandboxRunner:
        with self._start_lock:
            if self._zygote is not None and self._zygote.poll() is None:
                return self
            if self._zygote is not None:
                # The zygote died (killed, or out of memory): its runs have failed; start anew.
                log.warning(
                    "the sandbox zygote exited (%s); starting a new one", self._zygote.returncode
                )
                self._forget_zygote()
            self._start_zygote()
        return self

    def _start_zygote(self) -> None:
        if self._cgroups.version is not None:
            reap_stale_runs(psutil.pid_exists)
        ours, theirs = socket.socketpair()
        self._zygote = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                _ZYGOTE_BOOTSTRAP,
                str(theirs.fileno()),
                str(os.getpid()),
                *_zygote_path(),
            ],
            pass_fds=[theirs.fileno()],
            env=_zygote_environment(),
            cwd="/",
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        theirs.close()
        self._sock = ours
        send(ours, {"type": "hello", "cgroups": self._cgroups.version is not None})
        ready, _ = receive(ours)
        if ready.get("type") != "ready":
            raise RuntimeError(f"the sandbox zygote did not start: {ready}")
        self._machine = dict(ready["machine"])
        threading.Thread(
            target=self._demux, args=(ours,), name="plugbox-zygote", daemon=True
        ).start()

    def _forget_zygote(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._zygote is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._zygote.wait(timeout=1)
            self._zygote = None

    def close(self) -> None:
        self._closing = True
        self._warmer.drain()
        with self._warm_lock:
            warm, self._warm = list(self._warm.values()), {}
        for child in warm:
            self._discard(child)
        self._cleaner.drain()
        self._cgroup_pool.close()
        remove_empty_parents()
        if self._sock is not None:
            try:
                with self._lock:
                    send(self._sock, {"type": "shutdown"})
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._zygote is not None:
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None

    def __enter__(self) -> SandboxRunner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def machine(self) -> dict[str, Any]:
        """What the zygote found this machine can enforce (Landlock ABI, netns, seccomp, cgroups)."""
        return dict(self._machine)

    def _demux(self, sock: socket.socket) -> None:
        while True:
            try:
                message, _ = receive(sock)
            except (EOFError, OSError, ProtocolError):
                with self._handoff:
                    everyone = list(self._runs.values())
                for state in everyone:
                    state.spawned.put(
                        {"type": "spawn_failed", "error": "the sandbox zygote exited"}
                    )
                    state.exited.set()
                return
            kind = message.get("type")
            if kind in ("spawned", "spawn_failed"):
                with self._handoff:
                    waiting = self._runs.get(str(message.get("spawn_id")))
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
            with self._lock:
                send(sock, {"type": "kill", "pid": pid})
        except OSError:
            pass  # the zygote is gone, and its children with it (PR_SET_PDEATHSIG)

    # -- one run ------------------------------------------------------------------------
    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        responder: Responder | None = None,
    ) -> Outcome:
        """Run ``request`` in a confined child and return its outcome; never raises.

        A job's fault, a spawn that fails or takes longer than :data:`SPAWN_TIMEOUT_S`, a zygote
        that died, a bug here: each is that run's failed outcome, the others carry on.
        ``cancel`` ends the run early (kill reason ``cancelled``); ``responder`` answers the
        job's HTTP requests after they pass every check, instead of the network (the harness's
        fake HTTP). A warm child — already forked, confined and in its cgroup, waiting for its
        go — is used when the previous run of the same job left one; a new one is prepared for
        next time.
        """
        started = datetime.now(UTC)
        try:
            return self._run(request, cancel, responder, started)
        except Exception as exc:
            log.exception("the sandbox failed running %s", request.handler)
            return _failure(
                started, f"the sandbox failed to run the job: {type(exc).__name__}: {exc}"
            )

    def _run(
        self,
        request: RunRequest,
        cancel: threading.Event | None,
        responder: Responder | None,
        started: datetime,
    ) -> Outcome:
        self.start()
        decider = effective_policy(request.permissions, *request.grants)
        quotas = request.quotas(self._defaults)
        key = _warm_key(request, quotas)
        child = self._take_warm(key)
        if child is None:
            spawned = self._spawn(key, request, quotas)
            if isinstance(spawned, str):
                return _failure(started, f"the run could not be started: {spawned}")
            child = spawned
        try:
            return self._drive(child, request, decider, quotas, started, cancel, responder)
        finally:
            if self._prewarm_enabled and not self._closing:
                # Prepare the next run's child after this one, so the two never compete for CPU.
                self._warmer.submit(key, request, quotas)

    def _take_warm(self, key: str) -> _Child | None:
        with self._warm_lock:
            child = self._warm.pop(key, None)
            pending = self._warming.get(key) if child is None else None
        if pending is not None and pending.wait(WARM_WAIT_S):
            # A child for this job is being forked right now: waiting for it beats a cold fork.
            with self._warm_lock:
                child = self._warm.pop(key, None)
        if child is not None and child.state.exited.is_set():
            self._discard(child)
            return None
        return child

    def _prewarm(self, key: str, request: RunRequest, quotas: Quotas) -> None:
        with self._warm_lock:
            if key in self._warm or key in self._warming or self._closing:
                return
            ready = self._warming[key] = threading.Event()
        try:
            spawned = self._spawn(key, request, quotas)
        finally:
            with self._warm_lock:
                self._warming.pop(key, None)
        if isinstance(spawned, str):
            ready.set()
            return
        with self._warm_lock:
            if key in self._warm or self._closing or len(self._warm) >= MAX_WARM:
                evicted: _Child | None = spawned
            else:
                self._warm[key] = spawned
                evicted = None
        ready.set()
        if evicted is not None:
            self._discard(evicted)

    def _discard(self, child: _Child) -> None:
        child.control.close()
        os.close(child.out_r)
        if child.cgroup is not None:
            self._cgroup_pool.release(child.cgroup)
        else:
            end_run(child.pid, None)
        self._runs.pop(child.spawn_id, None)

    def _spawn(self, key: str, request: RunRequest, quotas: Quotas) -> _Child | str:
        """Fork a confined child that waits for its go; an error text when that fails.

        ``key`` is the run's warm key: runs that share it share a spawn spec, built once.
        """
        assert self._sock is not None
        spawn_id = uuid.uuid4().hex
        built = self._specs.get(key)
        if built is None:
            spec, write_roots = spawn_spec(request, quotas, self._system_paths)
            built = (spec.model_dump_json(), write_roots)
            if len(self._specs) >= MAX_SPECS:
                self._specs.pop(next(iter(self._specs)))
            self._specs[key] = built
        text, write_roots = built
        try:
            # Every spawn: a job may have removed its directories since the last run.
            prepare_write_roots(request.workspace, write_roots)
        except OSError as err:
            return workspace_problem(request.workspace, err)
        parent_end, child_end = socket.socketpair()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        # The owner pid in the name lets a later host reap what a killed one left behind.
        name = f"{os.getpid()}-{spawn_id[:12]}"
        cgroup = self._cgroup_pool.acquire(name, quotas) if self._cgroups.version else None
        state = _RunState()
        with self._handoff:
            self._runs[spawn_id] = state
        try:
            with self._lock:
                send(
                    self._sock,
                    {"type": "spawn", "spawn_id": spawn_id, "spec": text},
                    [child_end.fileno(), out_w],
                )
            reply = state.spawned.get(timeout=SPAWN_TIMEOUT_S)
        except (OSError, queue.Empty) as err:
            reply = {"type": "spawn_failed", "error": self._spawn_problem(err)}
        finally:
            child_end.close()
            os.close(out_w)
        if reply.get("type") != "spawned":
            with self._handoff:
                self._runs.pop(spawn_id, None)
                # The reply may have come between the timeout and this line: its child is ours.
                with contextlib.suppress(queue.Empty):
                    late = state.spawned.get_nowait()
                    if late.get("type") == "spawned":
                        self._by_pid.pop(int(late["pid"]), None)
                        self._abandon(int(late["pid"]))
            parent_end.close()  # a late child waiting for its go reads EOF and exits
            os.close(out_r)
            if cgroup is not None:
                self._cgroup_pool.release(cgroup)
            return str(reply.get("error"))
        pid = int(reply["pid"])
        if cgroup is not None:
            with contextlib.suppress(ProcessLookupError):  # it already died; the run reports how
                cgroup.add(pid)
        return _Child(spawn_id, pid, parent_end, out_r, cgroup, state)

    def _spawn_problem(self, err: Exception) -> str:
        """Why a spawn got no answer, as far as the parent can tell."""
        if isinstance(err, OSError):
            return f"the sandbox zygote cannot be reached ({err.strerror or err})"
        zygote = self._zygote
        why = "it is busy preparing other runs, or stuck"
        if zygote is None or zygote.poll() is not None:
            why = "the zygote exited"
        else:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(zygote.pid).status() == psutil.STATUS_STOPPED:
                    why = "the zygote process is stopped"
        return (
            f"the sandbox took longer than {SPAWN_TIMEOUT_S:g} s to prepare this run's child "
            f"({why}); the run was not started"
        )

    def _drive(
        self,
        child: _Child,
        request: RunRequest,
        decider: Decider,
        quotas: Quotas,
        started: datetime,
        cancel: threading.Event | None,
        responder: Responder | None,
    ) -> Outcome:
        start = time.monotonic()
        watch = RunWatch(quotas)
        broker_record = RecordingDecider(decider)
        calls: Decider = broker_record
        if request.learn:
            calls, decider = LearningDecider(broker_record), LearningDecider(decider)
        relay = NetRelay(NetBroker(calls, responder=responder))
        state, cgroup = child.state, child.cgroup
        try:
            send(
                child.control,
                {
                    "type": "go",
                    "env": allowed_environment(request.environment, decider),
                    "context": request.context.model_dump(mode="json"),
                },
            )
            io = RunIO(child.pid, child.control, child.out_r, cgroup, state.exited)
            watch_run(io, watch, relay, start, cancel)
        except OSError:
            pass  # the child is gone before its go; its exit status tells why
        finally:
            relay.close()  # requests still in flight are abandoned with their run
            if watch.result is not None and watch.violation is None and cgroup is not None:
                # Fast path: SIGKILL what is left now; waiting for the exits and removing the
                # cgroup happen on the cleaner thread, off the trigger -> outcome path.
                signal_members(cgroup)
            else:
                end_run(child.pid, cgroup)
                state.exited.wait(timeout=5)  # the exit status explains a run without a result
            self._runs.pop(child.spawn_id, None)
            child.control.close()
            watch.drain_rest(child.out_r)
            os.close(child.out_r)
            peak, cpu = watch.peak_memory_mb, watch.cpu_ms
            if cgroup is not None:
                peak = max(peak, cgroup.peak_memory_mb())
                cpu = max(cpu, cgroup.cpu_ms())
                if cgroup.oom_killed() and watch.kill_reason is None:
                    watch.kill_reason = "memory"
                self._cleaner.submit(child.pid, cgroup)
        return watch.outcome(
            started,
            start,
            state.exit_message,
            peak,
            cpu,
            self._enforcement(cgroup is not None),
            broker_record,
        )

    def _enforcement(self, cgroups: bool) -> Enforcement:
        """Levels for a run: the zygote's probe for the child layers, this run's own cgroup."""
        cached = self._enforcement_cache.get(cgroups)
        if cached is None:
            cached = self._enforcement_cache[cgroups] = self._build_enforcement(cgroups)
        return cached

    def _build_enforcement(self, cgroups: bool) -> Enforcement:
        machine = self._machine
        landlock_on = bool(machine.get("landlock_abi"))
        seccomp_on = bool(machine.get("seccomp"))
        notes = []
        if not cgroups:
            notes.append(
                "no cgroup for this run: memory and processes were enforced by rlimits and polling"
            )
        if landlock_on:
            notes.append(
                "fs deny patterns inside an allowed directory are enforced by runtime.fs, not the kernel"
            )
        levels = capability_levels(
            landlock=landlock_on,
            netns=bool(machine.get("netns")),
            seccomp=seccomp_on,
            cgroup_memory=cgroups,
            cgroup_pids=cgroups,
        )
        return Enforcement(
            mode="sandbox",
            **levels,
            landlock_abi=int(machine.get("landlock_abi") or 0) or None,
            notes=tuple(notes),
        )


def _zygote_environment() -> dict[str, str]:
    """The zygote starts with no host secrets: only what Python itself needs."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _zygote_path() -> list[str]:
    """The host's import path entries for the zygote to append after its own.

    Never the empty or a relative entry, nor the working directory: those are where the host was
    started (usually the workspace, which jobs write), not where code was installed.
    """
    cwd = os.getcwd()
    return [
        entry
        for entry in sys.path
        if entry and os.path.isabs(entry) and os.path.normpath(entry) != cwd
    ]


def _failure(started: datetime, message: str) -> Outcome:
    """The outcome of a run the sandbox could not carry out: failed, ``SandboxError``."""
    now = datetime.now(UTC)
    return Outcome(
        status="failed",
        error=ErrorInfo(type="SandboxError", message=message),
        started_at=started,
        finished_at=now,
        duration_ms=max(0, int((now - started).total_seconds() * 1000)),
        enforcement=advisory_enforcement("sandbox", "the run never started"),
    )
