"""The warm fork server: one pre-imported Python process that forks a confined child per run.

Started by :class:`~plugbox.sandbox.runner.SandboxRunner` as an isolated interpreter
(``python -I``, working directory ``/``) with a scrubbed environment, so no directory a job can
write — the workspace, the host's working directory — is on its import path. It imports
everything a run needs (pydantic, the SDK, the proxies) but never plugin code, so each child
starts warm and clean, and plugin import-time code only ever runs confined.
``multiprocessing``'s forkserver would re-run ``__main__`` per child on 3.11; this is the small
server we need instead.

Messages (framed JSON, :mod:`plugbox.sandbox.protocol`):
parent -> zygote: ``hello``, ``spawn`` (with the run's control socket and output pipe as fds),
``kill`` (a run child whose run gave up waiting for it), ``shutdown``; zygote -> parent:
``ready``, ``spawned`` (pid), ``exited`` (pid, wait status, rusage). Every pid in a message is
the host's (as ``/proc`` names it): an unprivileged zygote lives in a PID namespace of its own
(kernel/pid_namespace.py) and translates its run children's pids, in ``_RUN_CHILDREN``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.machinery
import os
import selectors
import signal
import socket
import sys
from typing import Any

from plugbox.sandbox import zygote_fork
from plugbox.sandbox._libc import set_process_name
from plugbox.sandbox.child import prepare_streams, run_child
from plugbox.sandbox.confine import Confinement, MachineLayers
from plugbox.sandbox.kernel import capabilities, mount_view, namespaces
from plugbox.sandbox.kernel.pid_namespace import PidNamespaces
from plugbox.sandbox.limits.procfs import own_pid
from plugbox.sandbox.limits.reaper import become_subreaper, die_with_parent, kill_orphans
from plugbox.sandbox.limits.rlimits import mapped_size
from plugbox.sandbox.outcome import ErrorInfo, json_result
from plugbox.sandbox.protocol import receive, send
from plugbox.sandbox.request import RunContext, SpawnSpec
from plugbox.sdk.permissions import Decider, effective_policy

#: The run children this zygote forked and has not reaped yet (a registry, on purpose), by the pid
#: ``fork`` returned, to the pid the host knows them by: any other child of the zygote is an
#: orphan a finished run left behind.
_RUN_CHILDREN: dict[int, int] = {}


def _warm_up() -> None:
    """Exercise, once, the code paths every child takes after its go, so children inherit them
    initialised (pydantic validators, json, the outcome models) instead of paying per run."""
    context = RunContext(job_id="-", plugin_id="-", plugin_version="-", run_id="-")
    RunContext.model_validate(context.model_dump(mode="json"))
    json_result({"ok": True})
    ErrorInfo(type="x", message="x").model_dump()


def serve(sock: socket.socket) -> None:
    # Ctrl-C reaches the whole foreground process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # the zygote allocates little; collections would only dirty pages children share
    _warm_up()
    with contextlib.suppress(OSError):  # fds 1 and 2 closed by the host: each child opens its own
        prepare_streams()
    hello, _ = receive(sock)
    machine = MachineLayers.probe(cgroups=bool(hello.get("cgroups")))
    # A root host's view where the run uid can pass every folder on the way to what jobs need.
    view = mount_view.enter_for(hello)
    netns = ""
    if machine.shared_netns:
        # One empty network namespace (only a down `lo`) for the zygote and every child it forks:
        # no run can reach any network, and no child pays ~0.3 ms to create and the kernel more
        # to tear down a namespace of its own. The broker lives in the parent, outside it.
        netns = namespaces.unshare_network()
    # Unprivileged, this process forks here and the child goes on as the zygote (ADR 0009).
    pid_namespaces = PidNamespaces.for_zygote(
        own_userns=netns == "userns+netns", close=(sock.fileno(),)
    )
    become_subreaper()
    # Last, after every namespace this process enters (a new user namespace refills it).
    capabilities.empty_inherited_bounding()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    described = {**_describe(machine), "pidns": pid_namespaces.active, "mount_view": view}
    if not pid_namespaces.active:
        described["pidns_missing"] = pid_namespaces.reason
    send(sock, {"type": "ready", "pid": own_pid(), "machine": described})
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ, "parent")
        selector.register(wake_r, selectors.EVENT_READ, "sigchld")
        while True:
            for key, _ in selector.select():
                if key.data == "sigchld":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    _reap(sock, orphans_possible=not pid_namespaces.active)
                    continue
                try:
                    message, fds = receive(sock, max_fds=2)
                except EOFError:
                    return
                if message.get("type") == "shutdown":
                    return
                if message.get("type") == "spawn":
                    _spawn(sock, message, fds, machine, (wake_r, wake_w), pid_namespaces)
                elif message.get("type") == "kill":
                    _kill_run_child(int(message["pid"]))
            _reap(sock, orphans_possible=not pid_namespaces.active)


def _spawn(
    sock: socket.socket,
    message: dict[str, Any],
    fds: list[int],
    machine: MachineLayers,
    wake: tuple[int, int],
    pid_namespaces: PidNamespaces,
) -> None:
    control_fd, output_fd = fds
    spawn_id = message.get("spawn_id")
    try:
        spec, confinement, decider = _prepared(str(message["spec"]), machine)
    except Exception as exc:
        os.close(control_fd)
        os.close(output_fd)
        send(
            sock,
            {
                "type": "spawn_failed",
                "spawn_id": spawn_id,
                "error": str(exc),
            },
        )
        return
    # Move every object into the permanent generation so the child's collector never walks (and
    # copy-on-write faults) the zygote's heap; a few ms per run otherwise.
    gc.freeze()
    zygote = os.getpid()
    mapped = mapped_size()  # here, where reading /proc costs no copy-on-write faults
    # The child is born as pid 1 of a namespace of its own (kernel/pid_namespace.py).
    pid_namespaces.before_fork()
    pid = zygote_fork.fork()
    if pid != 0:
        pid_namespaces.after_fork()
        _RUN_CHILDREN[pid] = pid_namespaces.host_pid(pid)
    if pid == 0:
        die_with_parent(zygote)  # and each run child with the zygote
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.close(wake[0])
        os.close(wake[1])
        sock.detach()
        run_child(spec, confinement, control_fd, output_fd, mapped, decider)
    os.close(control_fd)
    os.close(output_fd)
    send(sock, {"type": "spawned", "spawn_id": spawn_id, "pid": _RUN_CHILDREN[pid]})


def _kill_run_child(host_pid: int) -> None:
    """Kill a run child this zygote forked (only those: the parent names it by host pid)."""
    for pid, known_as in _RUN_CHILDREN.items():
        if known_as == host_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@functools.lru_cache(maxsize=64)
def _prepared(text: str, machine: MachineLayers) -> tuple[SpawnSpec, Confinement, Decider]:
    """The validated spec for ``text`` and the confinement it asks for, made once per job.

    A job's spawns repeat the same text (it names no run), so from its second run on the zygote
    forks at once: no validation, no ruleset, no policy compile, no path search.
    """
    spec = SpawnSpec.model_validate_json(text)
    confinement = Confinement.prepare(spec, machine)
    # Compiled here so every child inherits it ready (and skips hashing the permissions).
    decider = effective_policy(spec.request.permissions, *spec.request.grants)
    _warm_finders(spec.request.handler, spec.request.python_path)
    return spec, confinement, decider


def _warm_finders(handler: str, python_path: tuple[str, ...]) -> None:
    """Locate the handler's top-level package (a directory listing, no plugin code runs) so the
    path finder caches every child inherits already know where it is."""
    top = handler.partition(":")[0].partition(".")[0]
    with contextlib.suppress(Exception):
        importlib.machinery.PathFinder.find_spec(top, [*python_path, *sys.path])


def _reap(sock: socket.socket, *, orphans_possible: bool) -> None:
    run_ended = False
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        host_pid = _RUN_CHILDREN.pop(pid, None)
        if host_pid is None:
            continue  # an orphan (below): no run waits for it
        run_ended = True
        send(
            sock,
            {
                "type": "exited",
                "pid": host_pid,
                "status": status,
                "cpu_ms": int((usage.ru_utime + usage.ru_stime) * 1000),
                "maxrss_kb": usage.ru_maxrss,
            },
        )
    if run_ended and orphans_possible:
        # A run child is a subreaper, so what its job left running (a setsid double-forked
        # daemon) was its child; as it died, those orphans came up to this subreaper. No run is
        # theirs any more: without a cgroup to kill them, nothing else would. With a PID
        # namespace per run there are none: the run child is pid 1 there, everything its job
        # leaves re-parents to it, and the kernel kills the lot when it exits.
        kill_orphans(keep=_RUN_CHILDREN.values())


def _describe(machine: MachineLayers) -> dict[str, Any]:
    return {
        "landlock_abi": machine.landlock_abi,
        "netns": machine.netns,
        "seccomp": machine.seccomp,
        "cgroups": machine.cgroups,
    }


def main() -> None:
    die_with_parent(int(sys.argv[2]))  # a host killed with SIGKILL takes the zygote with it
    set_process_name("plugbox-zygote")
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


if __name__ == "__main__":
    main()
