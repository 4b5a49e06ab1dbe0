"""A private, empty network namespace per run: the network layer of a run's confinement.

After :func:`unshare_network` the process (and all it starts) sees a network stack of its own with
a single interface, ``lo``, which is down: there is no route anywhere, not even to the host's
loopback, so raw TCP/UDP, TCP Fast Open, MPTCP, ICMP and DNS all fail, whatever Landlock's TCP
rules would have missed. Abstract unix sockets are per network namespace too, so the host's
(``@/tmp/.X11-unix``, D-Bus, ...) disappear. A job reaches the network only through
``runtime.net``, which the parent performs over an inherited unix socketpair (pathname and
socketpair unix sockets are not affected by the namespace).

``lo`` is left down on purpose: there is nothing in the namespace to talk to. A root job could
bring it up (``SIOCSIFFLAGS`` works on any socket, even ``AF_UNIX``) and talk to itself, which is
harmless because the namespace is its own; this is also why runs never share one namespace.

Python 3.11 has no ``os.unshare``, so this is a ctypes call. Namespaces cost something to create
(~0.3 ms here) and more to destroy (the kernel tears a namespace down in a worker thread), which
bounds how many runs per second a host can start; see docs/adr/0004-kernel-layers.md.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
from collections.abc import Callable

from plugbox.sandbox._libc import LIBC as _LIBC
from plugbox.sandbox.kernel import capabilities

__all__ = ["network_namespace_available", "probe_network", "unshare_network"]

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def unshare_network() -> str:
    """Move the calling process into a new, empty network namespace.

    As root (CAP_SYS_ADMIN) this is ``unshare(CLONE_NEWNET)``. Without that capability it is
    ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` followed by a one-line uid/gid map, so the process
    keeps its own uid and gid (and ``setgroups`` is disabled, as the kernel requires for an
    unprivileged gid map). Returns ``"netns"`` or ``"userns+netns"``, the way it was done.

    Must run while the process is single-threaded (the kernel refuses a new user namespace for a
    multi-threaded process) and before Landlock and seccomp: the uid map is written through
    ``/proc`` and the seccomp filter denies ``unshare``.
    """
    if _LIBC is None:
        raise OSError(errno.ENOSYS, f"network namespaces are Linux-only (this is {sys.platform})")
    if _LIBC.unshare(CLONE_NEWNET) == 0:
        return "netns"
    err = ctypes.get_errno()
    if err != errno.EPERM:
        raise OSError(err, f"unshare(CLONE_NEWNET) failed: {_hint(err)}")
    uid, gid = os.geteuid(), os.getegid()
    if _LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(
            err,
            "no network namespace: unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN and "
            f"unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: {_hint(err)}",
        )
    capabilities.bounding_refilled()  # a new user namespace comes with a full bounding set
    _map_own_ids(uid, gid)
    return "userns+netns"


def _hint(err: int) -> str:
    return {
        errno.EINVAL: "the process is multi-threaded, or the kernel lacks CONFIG_NET_NS/USER_NS",
        errno.ENOSPC: "the user.max_user_namespaces / max_net_namespaces limit is reached",
        errno.EPERM: "user namespaces are restricted on this machine (kernel.unprivileged_userns_"
        "clone=0, an AppArmor/SELinux policy, a container seccomp profile, or a chroot)",
        errno.EUSERS: "user namespaces are nested too deeply",
    }.get(err, os.strerror(err))


def _map_own_ids(uid: int, gid: int) -> None:
    # A process that changed its uid (a root parent's setuid() in the child) is not dumpable, and
    # the kernel then makes its /proc/self files root-owned: opening uid_map would fail with
    # EACCES. Being dumpable for the three writes is what lets the process map itself.
    assert _LIBC is not None
    dumpable = _LIBC.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
    if dumpable != 1:
        _LIBC.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        # Each map must arrive in a single write(2); setgroups must be "deny" before gid_map.
        for name, line in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1\n"),
            ("gid_map", f"{gid} {gid} 1\n"),
        ):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, line.encode())
            except OSError as exc:
                raise OSError(
                    exc.errno, f"writing /proc/self/{name} failed: {exc.strerror}"
                ) from exc
            finally:
                os.close(fd)
    finally:
        if dumpable != 1:
            _LIBC.prctl(_PR_SET_DUMPABLE, max(dumpable, 0), 0, 0, 0)


def in_forked_child(trial: Callable[[], str]) -> tuple[bool, str]:
    """Run ``trial`` in a forked child and return ``(succeeded, its message or error)``.

    For probes that would confine or alter the caller: the child applies the layer, reports one
    line through a pipe and exits with ``os._exit`` (no atexit handlers, no flushed parent buffers).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; the parent sees its report
        report = b"0probe raised before reporting"
        try:
            os.close(read_end)
            report = b"1" + trial().encode()
        except BaseException as exc:  # the child must report whatever happened, then exit
            report = b"0" + f"{type(exc).__name__}: {exc}".encode()
        finally:
            try:
                os.write(write_end, report[:4096])
            finally:
                os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if not data:
        return False, f"probe child died without reporting (wait status {status:#x})"
    return data[:1] == b"1", data[1:].decode(errors="replace")


@functools.cache
def probe_network() -> tuple[bool, str]:
    """Try :func:`unshare_network` in a forked child: ``(works, how or why not)``. Cached."""
    if _LIBC is None:
        return False, f"network namespaces are Linux-only (this is {sys.platform})"
    return in_forked_child(unshare_network)


def network_namespace_available() -> bool:
    """Whether this process could give a child a private network namespace (never unshares it)."""
    return probe_network()[0]
