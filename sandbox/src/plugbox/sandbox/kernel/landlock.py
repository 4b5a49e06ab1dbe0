"""A small ctypes binding for Landlock: the filesystem layer of a run's confinement.

Landlock lets an unprivileged process drop filesystem access for itself and every process it later
starts: once :meth:`Ruleset.restrict_self` returns, a path outside the granted trees cannot be
opened, listed, written, created, removed or executed — even by code that calls ``libc`` directly
through :mod:`ctypes`, and even as root. Signal and abstract-unix-socket *scoping* (ABI 6) also cut
the job off from processes outside its domain.

The ruleset is built once in the zygote (about 0.4 ms of ctypes calls) and only
:meth:`Ruleset.restrict_self` runs in each forked child (~0.02 ms in the kernel,
~0.06 ms with the Python around it).

Why our own binding: the PyPI ``landlock`` package reads ``errno`` where it should read the return
value and knows nothing about scoping. The ABI facts this module relies on:

====  ======  =====================================================================================
ABI   Linux   adds
====  ======  =====================================================================================
1     5.13    the filesystem rights up to ``MAKE_SYM``
2     5.19    ``REFER`` (cross-directory rename/link; under ABI 1 these always fail with ``EXDEV``)
3     6.2     ``TRUNCATE``
4     6.7     TCP bind/connect rights — deliberately not handled: the network namespace is the
              boundary (TCP Fast Open and MPTCP reach around Landlock's TCP hooks)
5     6.10    ``IOCTL_DEV``
6     6.12    scoping of signals and abstract unix sockets
7     6.15    audit-log flags and an errata query (nothing we need to set)
====  ======  =====================================================================================

What Landlock does not cover (see docs/adr/0004-kernel-layers.md): file descriptors opened before
``restrict_self``; metadata (``stat``, ``readlink``, ``chdir`` and walking a path all work on
denied paths, so a job can learn that a name exists); ``mmap(PROT_EXEC)`` of a readable file (only
``execve`` is the "execute" right); connecting to *pathname* unix sockets; and anything inside a
granted tree — rules only add, so a read-only subtree inside a read-write tree is writable.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import pwd
import stat
import sys
import threading
from dataclasses import dataclass

from plugbox.sandbox._libc import LIBC as _LIBC
from plugbox.sandbox._openat2 import RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, open_resolved

__all__ = [
    "LandlockPolicy",
    "LandlockUnavailable",
    "LinkRefused",
    "Ruleset",
    "abi_version",
    "default_policy",
    "default_system_paths",
    "default_writable_paths",
    "errata",
    "unavailable_reason",
]

# -- kernel constants (include/uapi/linux/landlock.h) ------------------------------------------
# The three syscalls have the same numbers on every architecture (they postdate the 424 unification).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_CREATE_RULESET_ERRATA = 1 << 1  # ABI 7
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

#: Every filesystem right each ABI knows. Handling all of them is what makes "not granted" mean
#: "denied": a right the ruleset does not handle stays allowed everywhere.
_HANDLED_BY_ABI = {
    1: (1 << 13) - 1,
    2: (1 << 14) - 1,
    3: (1 << 15) - 1,
    4: (1 << 15) - 1,
    5: (1 << 16) - 1,
}
# ABI 6 and 7 added no filesystem right. A newer kernel gets every right this table knows: rights
# added later stay unhandled (allowed) until the table learns them.
_LATEST_FS = _HANDLED_BY_ABI[5]

#: The rights that make sense on a non-directory. The kernel answers ``EINVAL`` when a rule on a
#: file carries a directory right (READ_DIR, MAKE_*, REMOVE_*, REFER).
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

_READ = READ_FILE | READ_DIR
_READ_EXEC = _READ | EXECUTE
# Never EXECUTE: a job must not be able to run a program it wrote. Never MAKE_CHAR or MAKE_BLOCK: a
# root job could otherwise mknod the host's disk inside its workspace and open it. Never IOCTL_DEV.
# REFER lets the job rename across its own directories; the kernel still refuses any link or rename
# whose destination would grant more than the source had, which is what stops hardlink escapes.
_READ_WRITE = (
    _READ
    | WRITE_FILE
    | TRUNCATE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SYM
    | MAKE_SOCK
    | MAKE_FIFO
    | REFER
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),  # ABI 4
        ("scoped", ctypes.c_uint64),  # ABI 6
    )


class _PathBeneathAttr(ctypes.Structure):
    # Packed in the uapi header (12 bytes, not 16): without _pack_ the kernel reads a wrong fd.
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _attr_size(abi: int) -> int:
    # Older kernels accept a larger struct only if the extra bytes are zero; sending the size the
    # running ABI defines keeps the error for a non-zero field explicit instead.
    if abi >= 6:
        return 24
    return 16 if abi >= 4 else 8


class LandlockUnavailable(OSError):  # noqa: N818 - the name reads as the condition
    """The running kernel has no usable Landlock (too old, or not in the ``lsm=`` boot list)."""


class LinkRefused(ValueError):  # noqa: N818 - the name reads as the condition
    """A ``read_only``/``read_write`` path is, or passes through, a symbolic link.

    Not an :class:`OSError` on purpose: a caller that treats an ``OSError`` from
    :meth:`Ruleset.build` as "Landlock unavailable here" and runs on without it must not be
    able to do so because a job planted a link. The spawn that asked for the rule fails instead.
    """

    def __init__(self, path: str, link: str) -> None:
        self.path = path
        self.link = link
        where = "is" if link == path else f"passes through {link!r}, which is"
        super().__init__(
            f"the kernel rule for {path!r} was refused: it {where} a symbolic link; "
            "permission rules never follow links (remove the link, or declare the real path)"
        )


def _create_ruleset_query(flag: int) -> int:
    """``landlock_create_ruleset(NULL, 0, flag)``: a value >= 0, or minus the errno."""
    if _LIBC is None:
        return -errno.ENOSYS
    result = int(
        _LIBC.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(flag))
    )
    return result if result >= 0 else -ctypes.get_errno()


@functools.cache
def abi_version() -> int:
    """The Landlock ABI of the running kernel, or 0 when Landlock is missing or disabled.

    Probed once per process (the answer cannot change without a reboot). ``ENOSYS`` means the
    kernel was built without Landlock; ``EOPNOTSUPP`` means it was built in but not enabled at boot.
    """
    result = _create_ruleset_query(_CREATE_RULESET_VERSION)
    return max(result, 0)


def unavailable_reason() -> str:
    """Why :func:`abi_version` is 0, in words an operator can act on (empty when it is not)."""
    result = _create_ruleset_query(_CREATE_RULESET_VERSION)
    if result > 0:
        return ""
    if _LIBC is None:
        return f"Landlock is Linux-only (this is {sys.platform})"
    if result == -errno.EOPNOTSUPP:
        return "Landlock is built into the kernel but disabled: add 'landlock' to the lsm= boot parameter"
    if result == -errno.ENOSYS:
        return (
            "the kernel has no Landlock (Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK=y is needed)"
        )
    return f"landlock_create_ruleset failed: {os.strerror(-result)}"


@functools.cache
def errata() -> int:
    """Bitmask of Landlock errata fixed in the running kernel (ABI >= 7 can say; else 0)."""
    return max(_create_ruleset_query(_CREATE_RULESET_ERRATA), 0) if abi_version() >= 7 else 0


@dataclass(frozen=True)
class LandlockPolicy:
    """Which trees a confined run may use, and how. Anything not listed is denied.

    ``read_write`` never includes execution: a job may write files but never ``execve`` them.
    The null device is read-write wherever it is listed (``subprocess.DEVNULL`` opens it O_RDWR).
    ``read_exec`` paths are the host's (``/lib`` -> ``usr/lib``) and are resolved through links;
    ``read_only`` and ``read_write`` paths are where a job's own files live, so they are opened
    without following any link (a job could plant one pointing at ``/``): give them as real,
    absolute paths, and a link anywhere on one raises :class:`LinkRefused`.
    Rules only add: a path listed as ``read_only`` beneath a ``read_write`` tree is still writable
    at this layer (the ``runtime.fs`` proxy is what enforces finer rules inside the workspace).
    """

    read_exec: tuple[str, ...]
    read_only: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()
    scope_signals: bool = True
    scope_abstract_unix: bool = True


# Directories a Python process and the programs runtime.shell may start need to read. /etc as a
# whole is deliberately absent (passwd, shadow, the host's configuration); so is /etc/ssl/private.
_SYSTEM_DIRS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt/homebrew",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust/extracted",
    "/etc/ca-certificates",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/timezone",
    "/usr/share/zoneinfo",
    "/etc/mime.types",
    # Character devices Python and common tools open by name. Read-only here; /dev/null is also in
    # default_writable_paths() because subprocess.DEVNULL opens it read-write.
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
)


def _never_granted() -> tuple[str, ...]:
    # Both homes: a zygote started with a scrubbed environment may have no $HOME (or the
    # workspace as $HOME), and the password database still names the real one.
    homes = {os.environ.get("HOME", "")}
    with contextlib.suppress(KeyError):  # a uid without a passwd entry (containers)
        homes.add(pwd.getpwuid(os.geteuid()).pw_dir)
    system = (
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/shm",
        "/tmp",
        "/var/tmp",
        "/run",
        "/home",
        "/root",
    )
    return system + tuple(sorted(h.rstrip("/") or "/" for h in homes if h))


def _is_grantable(path: str, forbidden: tuple[str, ...]) -> bool:
    """A path may be granted unless it *contains* a protected tree or lies in /proc or /sys.

    A Python prefix under ``$HOME`` (pyenv, a project venv) or under ``/tmp`` (a test venv) is
    fine; ``$HOME`` itself, or ``/``, would hand over the user's keys and ``/proc/<pid>/environ``.
    """
    for protected in forbidden:
        if protected == path or protected.startswith(path.rstrip("/") + "/"):
            return False
    return not path.startswith(("/proc/", "/sys/", "/dev/shm/"))


def _without_nested(paths: list[str]) -> tuple[str, ...]:
    # A rule on a tree covers everything beneath it; dropping the nested entries keeps build() fast.
    unique = sorted(set(paths))
    kept: list[str] = []
    for path in unique:
        if not any(path.startswith(parent.rstrip("/") + "/") for parent in kept):
            kept.append(path)
    return tuple(kept)


def default_system_paths() -> tuple[str, ...]:
    """The existing paths a Python process needs to read and execute to keep working.

    System library and binary trees, CA certificates, time zones, ``/dev/null``-style devices, the
    Python prefixes (``sys.base_prefix``, ``sys.prefix`` and the exec prefixes) and the directories
    on ``sys.path`` (editable installs live outside the prefix). Never ``/proc``, ``/sys``,
    ``/dev/shm``, ``/tmp`` or ``$HOME`` itself, nor any directory that contains one of them: a
    ``sys.path`` entry such as the home directory is dropped rather than granted.
    """
    forbidden = _never_granted()
    python = [sys.base_prefix, sys.prefix, sys.base_exec_prefix, sys.exec_prefix]
    python += [p for p in sys.path if os.path.isabs(p)]
    candidates = list(_SYSTEM_DIRS) + [os.path.abspath(p) for p in python]
    found = [p for p in candidates if _is_grantable(p, forbidden) and os.path.exists(p)]
    return _without_nested(found)


def default_writable_paths() -> tuple[str, ...]:
    """Device files every run may write: ``/dev/null`` (``subprocess.DEVNULL`` opens it ``O_RDWR``)."""
    return tuple(p for p in ("/dev/null",) if os.path.exists(p))


def default_policy(
    *,
    read_exec: tuple[str, ...] = (),
    read_only: tuple[str, ...] = (),
    read_write: tuple[str, ...] = (),
) -> LandlockPolicy:
    """A policy with :func:`default_system_paths` and :func:`default_writable_paths` added."""
    return LandlockPolicy(
        read_exec=default_system_paths() + read_exec,
        read_only=read_only,
        read_write=default_writable_paths() + read_write,
    )


class Ruleset:
    """A Landlock ruleset, built once (in the zygote) and applied in each forked child.

    The kernel object behind :attr:`fd` is shared by every process holding a copy of the fd, and it
    stays mutable: a confined job that kept the fd could add a rule granting ``/`` and every *later*
    child would be restricted by the widened ruleset. :meth:`restrict_self` therefore closes the
    child's copy before returning, and a runner must not hand the fd to anything else.
    """

    __slots__ = ("abi", "fd", "skipped")

    def __init__(self, fd: int, abi: int, skipped: tuple[str, ...]) -> None:
        self.fd = fd
        self.abi = abi
        self.skipped = skipped

    @classmethod
    def build(cls, policy: LandlockPolicy) -> Ruleset:
        """Create the ruleset for ``policy`` on the running ABI (best effort, never weaker).

        Rights the running ABI does not know are dropped from both the handled set and the rules,
        which is the most the kernel can enforce there. Paths that do not exist are skipped and
        listed in :attr:`skipped`. Raises :class:`LandlockUnavailable` when the ABI is 0, and
        :class:`LinkRefused` when a ``read_only``/``read_write`` path is or crosses a symlink:
        the rule is made from the descriptor that check opened, so a link swapped in after any
        earlier check cannot redirect it.
        """
        abi = abi_version()
        if abi == 0 or _LIBC is None:
            raise LandlockUnavailable(errno.ENOSYS, unavailable_reason() or "Landlock unavailable")
        handled = _HANDLED_BY_ABI.get(abi, _LATEST_FS)
        scoped = 0
        if abi >= 6:
            scoped |= SCOPE_SIGNAL if policy.scope_signals else 0
            scoped |= SCOPE_ABSTRACT_UNIX_SOCKET if policy.scope_abstract_unix else 0
        attr = _RulesetAttr(handled, 0, scoped)
        fd = int(_LIBC.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), _attr_size(abi), 0))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_create_ruleset failed: {os.strerror(err)}")
        skipped: list[str] = []
        try:
            for paths, rights, follow in (
                (policy.read_exec, _READ_EXEC, True),
                (policy.read_only, _READ, False),
                (policy.read_write, _READ_WRITE, False),
            ):
                for path in paths:
                    if not _add_path(fd, path, rights & handled, handled, follow=follow):
                        skipped.append(path)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, abi, tuple(skipped))

    def restrict_self(self) -> None:
        """Confine this process (and all it will start) to the ruleset; then close the fd.

        Sets ``no_new_privs`` first (the kernel requires it unless the caller has CAP_SYS_ADMIN,
        and it keeps a set-uid binary from shedding the domain). Landlock confines only the calling
        thread and its future children, so this refuses to run while other Python threads exist.
        """
        if _LIBC is None:
            raise LandlockUnavailable(errno.ENOSYS, "Landlock is Linux-only")
        if threading.active_count() > 1:
            raise RuntimeError(
                "Ruleset.restrict_self must run while the process is single-threaded: "
                "Landlock confines only the calling thread"
            )
        if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(err)}")
        if _LIBC.syscall(_SYS_RESTRICT_SELF, self.fd, 0) != 0:
            err = ctypes.get_errno()
            hint = {
                errno.E2BIG: "the process is already nested 16 Landlock domains deep",
                errno.EBADF: "the ruleset fd is closed (restrict_self runs once per process)",
                errno.EBADFD: "the fd is not a Landlock ruleset",
                errno.EPERM: "no_new_privs is not set and the process lacks CAP_SYS_ADMIN",
            }.get(err, os.strerror(err))
            raise OSError(err, f"landlock_restrict_self failed: {hint}")
        self.close()

    def close(self) -> None:
        """Close this process's copy of the ruleset fd (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Ruleset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ruleset(fd={self.fd}, abi={self.abi}, skipped={self.skipped!r})"


_NULL_DEVICE = os.makedev(1, 3)


def _open_rule_path(path: str, *, follow: bool) -> int:
    """An ``O_PATH`` descriptor for one rule; the rule is made from it, never from the name."""
    if follow:
        # O_PATH follows symlinks (/lib -> usr/lib), so the rule lands on the real tree, which is
        # the one the kernel checks at open time. Only for the host's own paths.
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    if not os.path.isabs(path) or ".." in path.split("/"):
        raise ValueError(f"a rule path must be absolute and without '..', not {path!r}")
    try:
        fd = open_resolved(path, os.O_PATH, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise LinkRefused(path, _first_link(path)) from None
        raise
    if stat.S_ISLNK(os.fstat(fd).st_mode):  # the fallback walk opens a final link itself
        os.close(fd)
        raise LinkRefused(path, path)
    return fd


def _first_link(path: str) -> str:
    """The first component of ``path`` that is a symlink (for the message; the fd decided)."""
    current = ""
    for part in path.strip("/").split("/"):
        current += "/" + part
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
    return path


def _add_path(ruleset_fd: int, path: str, rights: int, handled: int, *, follow: bool) -> bool:
    """Add one path-beneath rule; False when the path does not exist (or cannot be reached)."""
    assert _LIBC is not None
    try:
        parent = _open_rule_path(path, follow=follow)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return False
    try:
        info = os.fstat(parent)
        if not stat.S_ISDIR(info.st_mode):
            rights &= _FILE_RIGHTS
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == _NULL_DEVICE:
                # Wherever it is listed, the null device is read-write: subprocess.DEVNULL opens it
                # O_RDWR (a read-only rule fails every `stdin=DEVNULL`), and writes go nowhere.
                rights |= (READ_FILE | WRITE_FILE | TRUNCATE) & handled
        rule = _PathBeneathAttr(rights, parent)
        if _LIBC.syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule failed for {path!r}: {os.strerror(err)}")
    finally:
        os.close(parent)
    return True
