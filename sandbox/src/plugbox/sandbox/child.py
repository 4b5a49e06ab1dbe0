"""What runs inside a freshly forked run child: confine first, then import and run the job.

Order matters and is the point of this module:

1. new session, stdout/stderr to the run's output pipe, every other descriptor closed (an fd
   inherited from the zygote is not covered by Landlock);
2. cwd in the workspace, subreaper, the confinement layers (:mod:`plugbox.sandbox.confine`) —
   they depend only on the spawn spec, so a pre-forked warm child is confined while it waits;
3. wait for the parent's "go" — it arrives after the parent has put this process in the run's
   cgroup, and carries the run's context and the only environment variables the job may see;
4. scrubbed environment with ``TMPDIR`` in the job's first writable directory;
5. only then is the plugin's module imported and its handler called.

Whatever happens, the process ends with ``os._exit`` so no zygote state (atexit handlers, buffered
streams) runs twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from typing import Any, NoReturn

from plugbox.sandbox._libc import set_process_name
from plugbox.sandbox.channel import ChildChannel
from plugbox.sandbox.confine import Confinement
from plugbox.sandbox.handlers import call_handler, import_handler
from plugbox.sandbox.limits.reaper import become_subreaper
from plugbox.sandbox.outcome import json_result
from plugbox.sandbox.protocol import receive
from plugbox.sandbox.request import RunContext, SpawnSpec
from plugbox.sandbox.session import Collector, build_context, error_from
from plugbox.sdk import ResourceUsage
from plugbox.sdk.permissions import Decider, effective_policy

EXIT_OK = 0
EXIT_SETUP_FAILED = 70


def run_child(
    spec: SpawnSpec,
    confinement: Confinement,
    control_fd: int,
    output_fd: int,
    mapped_bytes: int | None = None,
    decider: Decider | None = None,
) -> NoReturn:
    """Entry point in the forked child; never returns.

    ``mapped_bytes``: the zygote's address-space size measured just before the fork;
    ``decider``: the run's compiled policy, when the zygote already holds it.
    """
    code = EXIT_SETUP_FAILED
    request = spec.request
    try:
        set_process_name("plugbox-run")
        # The zygote's argv names the host's pid; a job has no business knowing it.
        sys.argv = ["plugbox-run"]
        sys.orig_argv = ["plugbox-run"]
        _detach(control_fd, output_fd, keep=confinement.inherited_fds())
        control = socket.socket(fileno=control_fd)
        os.chdir(request.workspace)
        # Orphans of the job (a setsid double-fork) re-parent to this process, so the tree walk
        # that ends a run without cgroups still finds them.
        become_subreaper()
        # Confinement depends only on the spawn spec, so a warm child is already confined while
        # it waits; nothing of the plugin runs before the go, which comes after the cgroup move.
        confinement.apply_in_child(mapped_bytes)
        go, _ = receive(control)
        env = {str(k): str(v) for k, v in dict(go.get("env", {})).items()}
        secrets = {str(k): str(v) for k, v in dict(go.get("secrets", {})).items()}
        # A warm child was forked before its run existed; the run's facts arrive with go.
        context = RunContext.model_validate(go["context"])
        # tempfile needs a directory the job may write: its first write root (the workspace
        # root itself never is one); a job that may write nowhere has none, as it should.
        temp = spec.landlock_read_write[0] if spec.landlock_read_write else request.workspace
        _scrub_environment(env, temp)
        sys.path[0:0] = list(request.python_path)
        # Landlock lets the child execute only there (None: no Landlock, nothing to say).
        exec_roots = spec.landlock_read_exec if confinement.ruleset is not None else None
        if decider is None:
            decider = effective_policy(request.permissions, *request.grants)
        code = _run(spec, decider, context, control, env, secrets, exec_roots)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"plugbox: run setup failed: {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(code)


def _detach(control_fd: int, output_fd: int, keep: tuple[int, ...]) -> None:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    keep_fds = sorted({0, 1, 2, control_fd, *keep})
    low = 3
    for fd in keep_fds:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _max_fd())
    if not _STREAMS.prepared:
        prepare_streams()


class _Streams:
    prepared = False


_STREAMS = _Streams()


def prepare_streams() -> None:
    """``sys.stdout``/``sys.stderr`` as a run wants them: line-buffered UTF-8 on fds 1 and 2.

    The zygote calls this once at start (its own output goes nowhere else), so each child, once
    it has pointed fds 1 and 2 at the run's output pipe, writes through objects it inherited
    empty instead of building two text streams (~0.2 ms of copy-on-write faults per run).
    """
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    _STREAMS.prepared = True


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


def _scrub_environment(allowed: dict[str, str], temp: str) -> None:
    os.environ.clear()
    os.environ.update(allowed)
    os.environ["TMPDIR"] = temp
    os.environ.setdefault("LANG", "C.UTF-8")


def _run(
    spec: SpawnSpec,
    decider: Decider,
    context: RunContext,
    control: socket.socket,
    env: dict[str, str],
    secrets: dict[str, str],
    exec_roots: tuple[str, ...] | None,
) -> int:
    request = spec.request
    channel = ChildChannel(control)
    quotas = spec.quotas
    start = time.monotonic()
    cpu_start = time.process_time()

    def usage() -> ResourceUsage:
        import resource

        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return ResourceUsage(
            wall_ms=int((time.monotonic() - start) * 1000),
            cpu_ms=int((time.process_time() - cpu_start) * 1000),
            peak_memory_mb=round(peak_kb / 1024, 1),
        )

    collector = _StreamingCollector(channel)
    ctx, fs, recorder = build_context(
        request,
        decider,
        quotas,
        collector,
        channel.net,
        usage,
        host_path=spec.host_path,
        context=context,
        environment=env,
        secrets=secrets,
        exec_roots=exec_roots,
    )
    payload: dict[str, Any]
    try:
        value = call_handler(import_handler(request.handler), ctx)
        result, error = json_result(value)
        payload = {"result": result, "error": error.model_dump() if error else None}
    except BaseException as exc:
        payload = {"result": None, "error": error_from(exc).model_dump()}
    finally:
        fs.close()
    payload["accesses"] = recorder.export()
    payload["accesses_truncated"] = recorder.truncated
    sys.stdout.flush()
    sys.stderr.flush()
    channel.result(payload)
    return EXIT_OK


class _StreamingCollector(Collector):
    """Sends each log line and event to the parent as it happens (the parent bounds them)."""

    def __init__(self, channel: ChildChannel) -> None:
        super().__init__()
        self._channel = channel

    def add_log(self, record: Any) -> None:
        self._channel.log(record)

    def add_event(self, name: str, data: Any) -> None:
        self._channel.event(name, data)
