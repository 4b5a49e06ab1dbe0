"""A seccomp deny-list for confined runs, compiled by libseccomp (through ctypes) in the zygote.

The filter is the last kernel layer a child applies, because it denies ``unshare``, which the
network namespace needs. Its job is to close the kernel doors the other layers leave open:
tracing or reading other processes (``ptrace``, ``process_vm_*``), io_uring (whose operations
never pass through seccomp, so an ``IORING_OP_SOCKET`` would dodge the socket rule), new
namespaces (a fresh user namespace would give the job capabilities to undo the rest), mounts, BPF,
keyrings, root-only host changes, every socket family but ``AF_UNIX`` (``AF_VSOCK`` is not
network-namespaced and reaches the hypervisor); file metadata (Landlock has no hook on chmod,
chown, utimes or xattrs) and set-id bits at creation; scheduling, limits and memory placement of
any process but the caller; SysV IPC and POSIX message queues; unix ``connect``/``bind``/
``listen`` and datagram sockets; ``execveat`` always and, without the ``shell`` capability,
``execve``. The rules themselves, and why each is there: :mod:`.seccomp_rules`.

Denials return ``EPERM`` (Python raises a clear :class:`PermissionError`) rather than killing the
process, except for the wrong-architecture case: a 32-bit (``int 0x80``) or x32 syscall number
means different things than the native table this filter checks, so those kill the process.

libseccomp is needed only in the zygote: :meth:`Filter.build` exports the BPF program, and
:meth:`Filter.load` hands it to the kernel with one ``seccomp(2)`` call (~0.1 ms, mostly the kernel JIT-compiling
the program and precomputing its per-syscall cache), so no library is loaded in the child. The
binary-tree layout (``SCMP_FLTATR_CTL_OPTIMIZE``) loads faster than the linear one and adds about
10 ns to each syscall.

Decided and not denied: ``personality`` (it changes only the job's own address-space layout;
libseccomp 2.5 cannot express "deny all values but 0 and the 0xffffffff query", and denying the
query breaks tools), ``name_to_handle_at`` (harmless without ``open_by_handle_at``, which is
denied), the ``landlock_*`` calls (a job may confine itself further; the zygote's ruleset fd is
closed before job code runs, see :class:`~plugbox.sandbox.kernel.landlock.Ruleset`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import platform
import sys
from dataclasses import dataclass

from plugbox.sandbox._libc import LIBC as _LIBC
from plugbox.sandbox.kernel.seccomp_rules import DENIED_SYSCALLS, UNIFIED_NUMBERS, rules

__all__ = [
    "DENIED_SYSCALLS",
    "Filter",
    "SeccompPolicy",
    "SeccompUnavailable",
    "libseccomp_version",
    "seccomp_available",
    "syscall_number",
    "unavailable_reason",
]

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_KILL_PROCESS = 0x80000000
_SCMP_FLTATR_ACT_BADARCH = 2
_SCMP_FLTATR_CTL_OPTIMIZE = 8  # libseccomp >= 2.5: 2 = binary tree, fewer jumps per syscall


def _errno_action(err: int) -> int:
    return 0x00050000 | (err & 0xFFFF)


_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SECCOMP_RET_ERRNO = 0x00050000
_PR_GET_SECCOMP = 21
_PR_SET_NO_NEW_PRIVS = 38
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


class SeccompUnavailable(OSError):  # noqa: N818 - the name reads as the condition
    """seccomp filtering cannot be used here (no libseccomp, no kernel support, not Linux)."""


@functools.cache
def _libseccomp() -> ctypes.CDLL | None:
    """Load and type libseccomp once; None when it is not installed."""
    if _LIBC is None:
        return None
    # The soname first: find_library runs `ldconfig -p` in a subprocess, which is slow.
    for name in ("libseccomp.so.2", ctypes.util.find_library("seccomp")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
        )  # fmt: skip
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        return lib
    return None


def libseccomp_version() -> str | None:
    """``"2.5.4"``-style version of the libseccomp found, or None when there is none."""
    lib = _libseccomp()
    if lib is None:
        return None
    version = lib.seccomp_version().contents
    return f"{version.major}.{version.minor}.{version.micro}"


def syscall_number(name: str) -> int | None:
    """The native number of syscall ``name`` (None if this architecture lacks it or no libseccomp)."""
    lib = _libseccomp()
    if lib is None:
        return None
    number = _resolve(lib, name)
    return number if number >= 0 else None


def unavailable_reason() -> str:
    """Why :func:`seccomp_available` is False, in words an operator can act on ('' when it is not)."""
    if _LIBC is None:
        return f"seccomp is Linux-only (this is {sys.platform})"
    if platform.machine() not in _SYS_SECCOMP:
        return f"no seccomp support for {platform.machine()} (x86_64 and aarch64 only)"
    if _LIBC.prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return "the kernel was built without seccomp filtering (CONFIG_SECCOMP_FILTER)"
    action = ctypes.c_uint32(_SECCOMP_RET_ERRNO)
    if _LIBC.syscall(_SYS_SECCOMP[platform.machine()], _SECCOMP_GET_ACTION_AVAIL, 0,
                     ctypes.byref(action)) != 0:  # fmt: skip
        return "the kernel's seccomp does not support the ERRNO action"
    if _libseccomp() is None:
        return "libseccomp not found: install libseccomp2 (Debian/Ubuntu) or libseccomp (Fedora)"
    return ""


def seccomp_available() -> bool:
    """Whether :meth:`Filter.build` and :meth:`Filter.load` can work here (confines nothing)."""
    return unavailable_reason() == ""


@dataclass(frozen=True)
class SeccompPolicy:
    """What the filter lets through beyond the default. ``allow_exec`` = the ``shell`` capability."""

    allow_exec: bool = False


class Filter:
    """A compiled seccomp program: built once in the zygote, loaded in each forked child."""

    __slots__ = ("_buffer", "_prog", "instructions", "policy", "unresolved")

    def __init__(self, policy: SeccompPolicy, program: bytes, unresolved: tuple[str, ...]) -> None:
        self.policy = policy
        self.instructions = len(program) // 8  # struct sock_filter is 8 bytes
        #: Denied names this architecture does not have (e.g. ``iopl`` on aarch64).
        self.unresolved = unresolved
        # Built here, so the child's load() allocates nothing and calls no library.
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(self.instructions, ctypes.addressof(self._buffer))

    @classmethod
    def build(cls, policy: SeccompPolicy) -> Filter:
        """Compile the deny-list for the native architecture into a BPF program."""
        reason = unavailable_reason()
        lib = _libseccomp()
        if reason or lib is None:
            raise SeccompUnavailable(errno.ENOSYS, reason or "libseccomp not found")
        ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
        if not ctx:
            raise SeccompUnavailable(errno.ENOMEM, "seccomp_init failed")
        try:
            # Only the native architecture is added: a syscall made through another ABI (i386
            # `int 0x80`, x32's 0x40000000 bit) would be checked against the wrong numbers, so
            # libseccomp routes it to the bad-arch action, which kills the whole process.
            _check(
                lib.seccomp_attr_set(ctx, _SCMP_FLTATR_ACT_BADARCH, _SCMP_ACT_KILL_PROCESS), "attr"
            )
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)  # older versions: keep linear
            unresolved = _add_rules(lib, ctx, policy)
            program = _export(lib, ctx)
        finally:
            lib.seccomp_release(ctx)
        return cls(policy, program, unresolved)

    def load(self) -> None:
        """Install the filter on this process (all its threads) and everything it starts.

        Sets ``no_new_privs`` first: the kernel requires it (or CAP_SYS_ADMIN), and it is what keeps
        a set-uid program from running outside the filter. The filter can never be removed.
        """
        if _LIBC is None or platform.machine() not in _SYS_SECCOMP:
            raise SeccompUnavailable(errno.ENOSYS, unavailable_reason())
        if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(err)}")
        # TSYNC applies the filter to every thread at once (Landlock has no such flag before ABI 8).
        result = _LIBC.syscall(
            _SYS_SECCOMP[platform.machine()],
            _SECCOMP_SET_MODE_FILTER,
            _SECCOMP_FILTER_FLAG_TSYNC,
            ctypes.byref(self._prog),
        )
        if result > 0:
            raise OSError(errno.EBUSY, f"seccomp: thread {result} runs under a different filter")
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER) failed: {os.strerror(err)}")

    def __repr__(self) -> str:
        return f"Filter({self.policy!r}, instructions={self.instructions})"


def _check(result: int, what: str) -> None:
    # libseccomp returns -errno and leaves errno alone.
    if result < 0:
        raise OSError(-result, f"libseccomp {what} failed: {os.strerror(-result)}")


def _resolve(lib: ctypes.CDLL, name: str) -> int:
    number = int(lib.seccomp_syscall_resolve_name(name.encode()))
    return number if number >= 0 else UNIFIED_NUMBERS.get(name, -1)


def _add_rules(lib: ctypes.CDLL, ctx: int, policy: SeccompPolicy) -> tuple[str, ...]:
    """Add :func:`~.seccomp_rules.rules`; return the names this architecture does not have."""
    unresolved: list[str] = []
    for rule in rules(allow_exec=policy.allow_exec):
        number = _resolve(lib, rule.syscall)
        if number < 0:
            if rule.syscall not in unresolved:
                unresolved.append(rule.syscall)
            continue
        cmps = [_ArgCmp(c.arg, c.op, c.a, c.b) for c in rule.cmps]
        array = (_ArgCmp * len(cmps))(*cmps) if cmps else None
        action = _errno_action(rule.errno)
        result = lib.seccomp_rule_add_array(ctx, action, number, len(cmps), array)
        _check(result, f"rule {rule.syscall}")
    return tuple(unresolved)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("plugbox-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
