"""The one runner API: run a job in a confined child and get back a bounded :class:`Outcome`.

``SandboxRunner`` owns a warm zygote (:mod:`plugbox.sandbox.zygote`, driven through
:mod:`plugbox.sandbox.zygote_client`). For each run it prepares the confinement plan, asks the
zygote to fork a child, puts the child in the run's cgroup, hands it the allowed environment,
then watches (:mod:`plugbox.sandbox.run_loop`): network requests go to the broker on threads of
their own, output is drained (truncated, never blocking the child), logs and events stream in,
bounded (:mod:`plugbox.sandbox.run_watch`), and the wall timeout, tree-wide CPU and memory, and
output volume are enforced. When the run ends — however it ends — every process of the run is
killed before the outcome is returned. A run the sandbox cannot carry out (a spawn that times
out, a zygote that died) is that run's failed outcome: :meth:`SandboxRunner.run` never raises.

Thread-safe: the host's worker pool may call :meth:`SandboxRunner.run` from several threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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
from plugbox.sandbox.protocol import send
from plugbox.sandbox.proxies.env import allowed_environment
from plugbox.sandbox.redact import finish_outcome
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunRequest
from plugbox.sandbox.run_identity import RunIdentity
from plugbox.sandbox.run_loop import RunIO, watch_run
from plugbox.sandbox.run_watch import RunWatch
from plugbox.sandbox.runner_threads import Cleaner, Warmer, end_run
from plugbox.sandbox.spawn_spec import (
    code_paths,
    spawn_spec,
    with_kernel_grants,
    workspace_problem,
)
from plugbox.sandbox.warm_pool import WarmPool
from plugbox.sandbox.workspace import prepare_write_roots
from plugbox.sandbox.zygote_client import RunState, ZygoteClient
from plugbox.sdk.permissions import Decider, Quotas, effective_policy

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_S = 10.0
#: Pre-forked children kept ready, over every job.
MAX_WARM = 8
#: Pre-forked children kept ready for one job: as many as its runs have been in flight at once.
MAX_WARM_PER_JOB = 4
#: Distinct jobs whose spawn spec is kept, built (a dict in insertion order, oldest dropped).
MAX_SPECS = 256
#: How long a run waits for a warm child that is being forked before forking its own.
WARM_WAIT_S = 0.05


#: What differs between runs that share a warm child: it travels with the go.
_PER_RUN = {"context", "environment", "secrets"}


@dataclass(slots=True)
class _Child:
    """A forked, confined child waiting for its go (cold, or warm from the pool)."""

    spawn_id: str
    pid: int
    control: socket.socket
    out_r: int
    cgroup: RunCgroup | None
    state: RunState


def _warm_key(request: RunRequest, quotas: Quotas) -> str:
    """Runs with the same key can share a warm child: everything but context, environment and
    secrets (which travel with the go)."""
    return request.model_dump_json(exclude=_PER_RUN) + quotas.model_dump_json()


class SandboxRunner:
    """Runs jobs in confined child processes forked from a warm zygote.

    ``prewarm`` keeps children forked and confined for the next runs of each job that ran (the
    ~1 ms a scheduler saves per run; as many per job as its runs were in flight at once, see
    :mod:`plugbox.sandbox.warm_pool`); a test suite whose every test has a new workspace never
    reuses one, and turns it off. ``reach`` names paths beside the installed code that every run
    needs — the host's workspace and plugin paths — so that on a root host the zygote's mount
    view opens the folders on the way to them for the run uid too (kernel/mount_view.py).
    """

    def __init__(
        self,
        *,
        defaults: Quotas = DEFAULT_QUOTAS,
        prewarm: bool = True,
        identity: RunIdentity | Literal["host"] | None = "host",
        reach: tuple[str, ...] = (),
    ) -> None:
        self._defaults = defaults
        # On a root host, jobs run as a dedicated uid where the paths they need allow it.
        self._identity = RunIdentity.for_this_host() if identity == "host" else identity
        self._prewarm_enabled = prewarm
        self._cgroups = cgroup_support()
        self._reaped = False
        self._system_paths = code_paths()
        run_as = None if self._identity is None else (self._identity.uid, self._identity.gid)
        self._zygote = ZygoteClient(
            cgroups=self._cgroups.version is not None,
            run_as=run_as,
            reach=self._system_paths + reach,
        )
        self._cgroup_pool = CgroupPool()
        self._cleaner = Cleaner(self._cgroup_pool)
        self._warm: WarmPool[_Child] = WarmPool(MAX_WARM, MAX_WARM_PER_JOB)
        self._specs: dict[str, tuple[str, tuple[str, ...], tuple[int, int] | None]] = {}
        self._enforcement_cache: dict[bool, Enforcement] = {}
        self._closing = False
        self._warmer = Warmer(self._prewarm)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SandboxRunner:
        """Start the zygote (again, if it died since)."""
        if not self._reaped and self._cgroups.version is not None:
            reap_stale_runs(psutil.pid_exists)
            self._reaped = True
        self._zygote.start()
        return self

    def close(self) -> None:
        self._closing = True
        self._warmer.drain()
        for child in self._warm.close():
            self._discard(child)
        self._cleaner.drain()
        self._cgroup_pool.close()
        remove_empty_parents()
        self._zygote.close()

    def __enter__(self) -> SandboxRunner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def machine(self) -> dict[str, Any]:
        """What the zygote found this machine can enforce (Landlock ABI, netns, seccomp, cgroups)."""
        return dict(self._zygote.machine)

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
        go — is used when an earlier run of the same job left one; a new one is prepared for
        next time.
        """
        started = datetime.now(UTC)
        try:
            outcome = self._run(request, cancel, responder, started)
        except Exception as exc:
            log.exception("the sandbox failed running %s", request.handler)
            outcome = _failure(
                started, f"the sandbox failed to run the job: {type(exc).__name__}: {exc}"
            )
        return finish_outcome(outcome, request)

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
        try:
            child = self._take_warm(key)
            if child is None:
                spawned = self._spawn(key, request, quotas)
                if isinstance(spawned, str):
                    return _failure(started, f"the run could not be started: {spawned}")
                child = spawned
            return self._drive(child, request, decider, quotas, started, cancel, responder)
        finally:
            self._warm.finished(key)
            if self._prewarm_enabled and not self._closing:
                # Prepare the next run's child after this one, so the two never compete for CPU.
                self._warmer.submit(key, request, quotas)

    def _take_warm(self, key: str) -> _Child | None:
        child = self._warm.take(key, WARM_WAIT_S)
        if child is not None and child.state.exited.is_set():
            self._discard(child)
            return None
        return child

    def _prewarm(self, key: str, request: RunRequest, quotas: Quotas) -> None:
        while not self._closing and self._warm.start_warming(key):
            spawned: _Child | str | None = None
            try:
                spawned = self._spawn(key, request, quotas)
            finally:
                evicted = self._warm.warmed(key, spawned if isinstance(spawned, _Child) else None)
            for child in evicted:
                self._discard(child)
            if isinstance(spawned, str):
                return

    def _discard(self, child: _Child) -> None:
        child.control.close()
        os.close(child.out_r)
        if child.cgroup is not None:
            self._cgroup_pool.release(child.cgroup)
        else:
            end_run(child.pid, None)
        self._zygote.forget(child.spawn_id)

    def _spawn(self, key: str, request: RunRequest, quotas: Quotas) -> _Child | str:
        """Fork a confined child that waits for its go; an error text when that fails.

        ``key`` is the run's warm key: runs that share it share a spawn spec, built once.
        """
        spawn_id = uuid.uuid4().hex
        built = self._specs.get(key)
        if built is None:
            spec, write_roots = spawn_spec(request, quotas, self._system_paths, self._seen())
            built = (spec.model_dump_json(), write_roots, spec.run_as)
            if len(self._specs) >= MAX_SPECS:
                self._specs.pop(next(iter(self._specs)))
            self._specs[key] = built
        text, write_roots, run_as = built
        try:
            # Every spawn: a job may have removed its directories since the last run.
            prepare_write_roots(request.workspace, write_roots)
            if run_as is not None:
                RunIdentity(*run_as).own(request.workspace, write_roots)
        except OSError as err:
            return workspace_problem(request.workspace, err)
        parent_end, child_end = socket.socketpair()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        # The owner pid in the name lets a later host reap what a killed one left behind.
        name = f"{os.getpid()}-{spawn_id[:12]}"
        cgroup = self._cgroup_pool.acquire(name, quotas) if self._cgroups.version else None
        try:
            forked = self._zygote.fork(spawn_id, text, [child_end.fileno(), out_w], SPAWN_TIMEOUT_S)
        finally:
            child_end.close()
            os.close(out_w)
        if isinstance(forked, str):
            parent_end.close()  # a late child waiting for its go reads EOF and exits
            os.close(out_r)
            if cgroup is not None:
                self._cgroup_pool.release(cgroup)
            return forked
        pid, state = forked
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
        relay = NetRelay(NetBroker(calls, responder=responder))
        state, cgroup = child.state, child.cgroup
        try:
            send(
                child.control,
                {
                    "type": "go",
                    "env": allowed_environment(request.environment, decider),
                    "secrets": request.secret_values(),
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
                cgroup.signal_kill()
            else:
                end_run(child.pid, cgroup)
                state.exited.wait(timeout=5)  # the exit status explains a run without a result
            self._zygote.forget(child.spawn_id)
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
            # What Landlock granted this job beside its rules (cached per job in spawn_spec).
            with_kernel_grants(
                self._enforcement(cgroup is not None), request, self._system_paths, self._seen()
            ),
            broker_record,
        )

    def _seen(self) -> RunIdentity | None:
        """The run identity as the zygote's mount view lets it see the filesystem."""
        if self._identity is None:
            return None
        covered = self._zygote.machine.get("mount_view", {}).get("covered", ())
        return self._identity.seeing(covered) if covered else self._identity

    def _enforcement(self, cgroups: bool) -> Enforcement:
        """Levels for a run: the zygote's probe for the child layers, this run's own cgroup."""
        cached = self._enforcement_cache.get(cgroups)
        if cached is None:
            cached = self._enforcement_cache[cgroups] = self._build_enforcement(cgroups)
        return cached

    def _build_enforcement(self, cgroups: bool) -> Enforcement:
        machine = self._zygote.machine
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
        view_problem = machine.get("mount_view", {}).get("problem")
        if self._identity is not None and view_problem:
            notes.append(
                f"{view_problem}: folders on the way to Python, the plugins or the workspace "
                "that other users cannot search keep the run uid out, and such runs keep uid 0"
            )
        if not machine.get("pidns"):
            why = machine.get("pidns_missing") or "this machine cannot make one"
            notes.append(
                f"no PID namespace for this run ({why}): other processes' pids exist for the "
                "job, though seccomp and Landlock refuse acting on them"
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
