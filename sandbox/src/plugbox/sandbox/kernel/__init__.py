"""Kernel confinement for a run's child process: Landlock, a private network namespace, seccomp.

These are the layers that still hold when job code ignores the runtime proxies. The zygote builds
what is expensive once (:meth:`Ruleset.build`, :meth:`Filter.build`); each forked child then applies,
in this order and after its fds, environment, cwd, session and rlimits are set up::

    unshare_network()        # before Landlock: the uid map (non-root) is written through /proc
    ruleset.restrict_self()  # closes the child's copy of the ruleset fd
    seccomp_filter.load()    # last: it denies unshare, and nothing after it may need to load code

Each layer is applied while the child is single-threaded and before any plugin module is imported.
What each one stops, and what none of them does: docs/adr/0004-kernel-layers.md.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from plugbox.sandbox.kernel.landlock import (
    LandlockPolicy,
    LandlockUnavailable,
    Ruleset,
    abi_version,
    default_policy,
    default_system_paths,
    default_writable_paths,
    errata,
)
from plugbox.sandbox.kernel.landlock import unavailable_reason as _landlock_unavailable_reason
from plugbox.sandbox.kernel.namespaces import (
    in_forked_child,
    network_namespace_available,
    probe_network,
    unshare_network,
)
from plugbox.sandbox.kernel.seccomp import (
    Filter,
    SeccompPolicy,
    SeccompUnavailable,
    libseccomp_version,
    seccomp_available,
)
from plugbox.sandbox.kernel.seccomp import unavailable_reason as _seccomp_unavailable_reason

__all__ = [
    "Filter",
    "LandlockPolicy",
    "LandlockUnavailable",
    "LayerStatus",
    "Ruleset",
    "SeccompPolicy",
    "SeccompUnavailable",
    "abi_version",
    "default_policy",
    "default_system_paths",
    "default_writable_paths",
    "network_namespace_available",
    "probe_all",
    "seccomp_available",
    "unshare_network",
]


@dataclass(frozen=True)
class LayerStatus:
    """One kernel layer as ``plugbox doctor`` reports it: does it work here, and what it is."""

    name: str
    active: bool
    detail: str


def probe_all() -> tuple[LayerStatus, ...]:
    """Try each layer for real in a forked child; the caller is never confined.

    A layer counts as active only when a child applied it and then saw it stop something.
    """
    return (_probe_landlock(), _probe_network(), _probe_seccomp())


def _probe_landlock() -> LayerStatus:
    abi = abi_version()
    if abi == 0:
        return LayerStatus("landlock", False, _landlock_unavailable_reason())

    def trial() -> str:
        ruleset = Ruleset.build(default_policy())
        ruleset.restrict_self()
        try:
            with open("/proc/self/environ", "rb"):
                pass
        except PermissionError:
            return ""
        raise RuntimeError("restrict_self returned but /proc/self/environ stayed readable")

    ok, message = in_forked_child(trial)
    scopes = ", signal and abstract-socket scoping" if abi >= 6 else ", no scoping (ABI < 6)"
    fixed = f", errata {errata():#x}" if abi >= 7 else ""
    return LayerStatus("landlock", ok, f"ABI {abi}{fixed}{scopes}" if ok else message)


def _probe_network() -> LayerStatus:
    ok, how = probe_network()
    detail = {
        "netns": "private empty network namespace (unshare CLONE_NEWNET)",
        "userns+netns": "private empty network namespace inside a user namespace (not root)",
    }.get(how, how)
    return LayerStatus("network namespace", ok, detail)


def _probe_seccomp() -> LayerStatus:
    reason = _seccomp_unavailable_reason()
    if reason:
        return LayerStatus("seccomp", False, reason)

    def trial() -> str:
        program = Filter.build(SeccompPolicy(allow_exec=False))
        program.load()
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        except PermissionError as exc:
            if exc.errno == errno.EPERM:
                return str(program.instructions)
        raise RuntimeError("the filter loaded but socket(AF_INET) was not denied")

    ok, message = in_forked_child(trial)
    detail = f"libseccomp {libseccomp_version()}, {message} BPF instructions" if ok else message
    return LayerStatus("seccomp", ok, detail)
