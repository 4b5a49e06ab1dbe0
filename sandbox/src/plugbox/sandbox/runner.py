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
import selectors
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
from plugbox.sandbox.limits.usage import TreeSampler
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
from plugbox.sandbox.run_watch import RunWatch, relay_net_request
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
SAMPLE_EVERY_S = 0.05


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
        self._lock = threading.Lock()
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
        if self._zygote is not None:
            return self
        if self._cgroups.version is not None:
            reap_stale_runs(psutil.pid_exists)
        ours, theirs = socket.socketpair()
        self._zygote = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plugbox.sandbox.zygote",
                str(theirs.fileno()),
                str(os.getpid()),
            ],
            pass_fds=[theirs.fileno()],
            env=_zygote_environment(),
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
        threading.Thread(target=self._demux, name="plugbox-zygote", daemon=True).start()
        return self

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

    def _demux(self) -> None:
        # Bound once: close() sets self._sock to None while this thread may still be reading.
        sock = self._sock
        assert sock is not None
        while True:
            try:
                message, _ = receive(sock)
            except (EOFError, OSError, ProtocolError):
                for state in list(self._runs.values()):
                    state.spawned.put(
                        {"type": "spawn_failed", "error": "the sandbox zygote exited"}
                    )
                    state.exited.set()
                return
            kind = message.get("type")
            if kind in ("spawned", "spawn_failed"):
                waiting = self._runs.get(str(message.get("spawn_id")))
                if waiting is not None:
                    if kind == "spawned":
                        self._by_pid[int(message["pid"])] = waiting
                    waiting.spawned.put(message)
            elif kind == "exited":
                ended = self._by_pid.pop(int(message["pid"]), None)
                if ended is not None:
                    ended.exit_message = message
                    ended.exited.set()

    # -- one run ------------------------------------------------------------------------
    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        responder: Responder | None = None,
    ) -> Outcome:
        """Run ``request`` in a confined child and return its outcome (never raises for job faults).

        ``cancel`` ends the run early (kill reason ``cancelled``); ``responder`` answers the
        job's HTTP requests after they pass every check, instead of the network (the harness's
        fake HTTP). A warm child — already forked, confined and in its cgroup, waiting for its go — is used
        when the previous run of the same job left one; a new one is prepared for next time.
        """
        self.start()
        decider = effective_policy(request.permissions, *request.grants)
        quotas = request.quotas(self._defaults)
        key = _warm_key(request, quotas)
        started = datetime.now(UTC)
        child = self._take_warm(key)
        if child is None:
            spawned = self._spawn(key, request, quotas)
            if isinstance(spawned, str):
                return self._setup_failure(started, time.monotonic(), spawned)
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
        self._runs[spawn_id] = state
        try:
            with self._lock:
                send(
                    self._sock,
                    {"type": "spawn", "spawn_id": spawn_id, "spec": text},
                    [child_end.fileno(), out_w],
                )
        finally:
            child_end.close()
            os.close(out_w)
        reply = state.spawned.get(timeout=SPAWN_TIMEOUT_S)
        if reply.get("type") != "spawned":
            parent_end.close()
            os.close(out_r)
            if cgroup is not None:
                self._cgroup_pool.release(cgroup)
            self._runs.pop(spawn_id, None)
            return str(reply.get("error"))
        pid = int(reply["pid"])
        if cgroup is not None:
            with contextlib.suppress(ProcessLookupError):  # it already died; the run reports how
                cgroup.add(pid)
        return _Child(spawn_id, pid, parent_end, out_r, cgroup, state)

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
        broker = NetBroker(calls, responder=responder)
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
            self._watch(
                child.pid, state, child.control, child.out_r, watch, broker, cgroup, start, cancel
            )
        except OSError:
            pass  # the child is gone before its go; its exit status tells why
        finally:
            if watch.result is not None and cgroup is not None:
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

    def _setup_failure(self, started: datetime, start: float, error: str) -> Outcome:
        now = datetime.now(UTC)
        return Outcome(
            status="failed",
            error=ErrorInfo(type="SandboxError", message=f"the run could not be started: {error}"),
            started_at=started,
            finished_at=now,
            duration_ms=int((time.monotonic() - start) * 1000),
            enforcement=advisory_enforcement("sandbox", "the run never started"),
        )

    def _watch(
        self,
        pid: int,
        state: _RunState,
        control: socket.socket,
        out_r: int,
        watch: RunWatch,
        broker: NetBroker,
        cgroup: RunCgroup | None,
        start: float,
        cancel: threading.Event | None = None,
    ) -> None:
        sampler = TreeSampler(pid, cgroup)
        next_sample = start + SAMPLE_EVERY_S
        control_open = True
        os.set_blocking(out_r, False)
        with selectors.DefaultSelector() as selector:
            selector.register(control, selectors.EVENT_READ, "control")
            selector.register(out_r, selectors.EVENT_READ, "output")
            while True:
                now = time.monotonic()
                if state.exited.is_set() and not control_open:
                    return
                if watch.deadline is not None and now >= start + watch.deadline:
                    watch.kill("timeout")
                    return
                if cancel is not None and cancel.is_set():
                    watch.kill("cancelled")
                    return
                if now >= next_sample:
                    usage = sampler.sample()
                    watch.observe(usage.rss_mb, usage.cpu_ms, usage.processes)
                    if watch.kill_reason is not None:
                        return
                    next_sample = now + SAMPLE_EVERY_S
                wait = SAMPLE_EVERY_S if control_open else 0.01
                for key, _ in selector.select(timeout=wait):
                    if key.data == "output":
                        if not watch.read_output(out_r):
                            selector.unregister(out_r)
                        if watch.kill_reason is not None:
                            return
                        continue
                    try:
                        message, _ = receive(control)
                    except (EOFError, OSError, ProtocolError):
                        selector.unregister(control)
                        control_open = False
                        continue
                    self._on_message(message, control, watch, broker, start)
                    if watch.result is not None:
                        # The job has answered; what is left of the run is killed, not awaited.
                        return
                if state.exited.is_set() and control_open and not selector.select(timeout=0):
                    # The child is gone; anything it wrote is already readable or lost.
                    return

    def _on_message(
        self,
        message: dict[str, Any],
        control: socket.socket,
        watch: RunWatch,
        broker: NetBroker,
        start: float,
    ) -> None:
        kind = message.get("type")
        if kind == "log":
            watch.add_log(message)
        elif kind == "event":
            watch.add_event(message)
        elif kind == "result":
            watch.result = message
        elif kind == "net":
            send(control, relay_net_request(broker, message, watch.time_left(start)))


def _zygote_environment() -> dict[str, str]:
    """The zygote starts with no host secrets: only what Python itself needs."""
    keep = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
    }
    if "PYTHONPATH" in os.environ:
        keep["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return keep
