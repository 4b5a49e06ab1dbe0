"""What the PID namespace costs the zygote per spawn, on an unprivileged host and on a root host.

Run: ``.venv/bin/python tests/benchmarks/bench_spawn_pidns.py [--spawns 1000] [--repeat 5]`` (as
root it drops to an unprivileged user for the unprivileged figures). Each figure is the best of
``repeat`` rounds, the kinds taking turns, so a busy machine skews them alike. A forked child stands in for the zygote:
it makes its network namespace as the zygote does, then times ``spawns`` forks of a child that
exits at once, each reaped before the next:

* ``unprivileged_plain_forks_per_s`` — before ADR 0009: no PID namespace, a plain ``fork``;
* ``unprivileged_pidns_forks_per_s`` — after: the zygote is pid 1 of its own namespace
  (``enter_own``, timed once as ``enter_own_ms``) and each spawn is
  ``unshare``/``fork``/``setns`` plus the host-pid translation (timed alone as ``host_pid_us``);
* ``root_plain_forks_per_s`` / ``root_pidns_forks_per_s`` — the same on the root path (no
  translation there), as a reference;
* ``*_cpu_us`` — the CPU each spawn costs, the zygote's and the child's together (wall time on a
  busy machine is mostly waiting for a core; CPU time is not), and
  ``unprivileged_pidns_extra_cpu_us``, what the layer adds per spawn there.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import pwd
import resource
import time
from collections.abc import Callable
from typing import Any

from plugbox.sandbox.kernel.namespaces import unshare_network
from plugbox.sandbox.kernel.pid_namespace import PidNamespaces, enter_own


def _spawns(
    spawns: int, before: Callable[[], None], after: Callable[[int], object]
) -> tuple[float, float]:
    """Forks per second (wall) and CPU microseconds per spawn (this process and its children,
    which a busy machine does not inflate the way it does wall time)."""
    cpu = _cpu_s()
    start = time.perf_counter()
    for _ in range(spawns):
        before()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        after(pid)
        os.waitpid(pid, 0)
    wall = time.perf_counter() - start
    return spawns / wall, (_cpu_s() - cpu) / spawns * 1e6


def _cpu_s() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _nothing(*_: object) -> None:
    return None


def _measure(spawns: int, user: pwd.struct_passwd | None) -> dict[str, float]:
    kind = "root" if user is None else "unprivileged"
    if user is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    how = unshare_network()
    figures: dict[str, float] = {}
    figures[f"{kind}_plain_forks_per_s"], figures[f"{kind}_plain_cpu_us"] = _spawns(
        spawns, _nothing, _nothing
    )
    started = time.perf_counter()
    if how == "userns+netns":
        enter_own()
        figures["enter_own_ms"] = (time.perf_counter() - started) * 1000
        namespaces = PidNamespaces.open(own=True)
    else:
        namespaces = PidNamespaces.open()
    assert namespaces.active, namespaces.reason

    def after(pid: int) -> None:
        namespaces.after_fork()
        namespaces.host_pid(pid)

    figures[f"{kind}_pidns_forks_per_s"], figures[f"{kind}_pidns_cpu_us"] = _spawns(
        spawns, namespaces.before_fork, after
    )
    if namespaces.own:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        start = time.perf_counter()
        for _ in range(spawns):
            namespaces.host_pid(pid)
        figures["host_pid_us"] = (time.perf_counter() - start) / spawns * 1e6
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return figures


def _in_child(spawns: int, user: pwd.struct_passwd | None) -> dict[str, float]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, pickle.dumps(_measure(spawns, user)))
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    figures: dict[str, float] = pickle.loads(data)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spawns", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--user", default="plugbox-test", help="the unprivileged user (as root)")
    args = parser.parse_args()
    users = [pwd.getpwuid(os.geteuid())]
    if os.geteuid() == 0:
        users = [None, pwd.getpwnam(args.user)]
    rounds: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for user in users:
            for name, value in _in_child(args.spawns, user).items():
                rounds.setdefault(name, []).append(value)
    results: dict[str, Any] = {"spawns": args.spawns, "repeat": args.repeat}
    for name, values in rounds.items():
        results[name] = max(values) if name.endswith("_per_s") else min(values)
    results["unprivileged_pidns_extra_cpu_us"] = (
        results["unprivileged_pidns_cpu_us"] - results["unprivileged_plain_cpu_us"]
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
