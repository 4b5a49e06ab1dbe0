"""A tiny ctypes binding for ``openat2(2)``: resolve a path strictly beneath a held directory.

Checking a path and then opening it by name loses to a symlink swapped in between. ``openat2`` with
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` makes the kernel refuse, during the
one resolution that opens the file, any ``..`` escape, any symlink (so a link inside an allowed
directory cannot point at a denied file) and ``/proc`` magic links. Where the syscall is missing
(Linux < 5.6, other systems) :func:`open_beneath` walks the path one component at a time with
``O_NOFOLLOW`` from the held directory, which gives the same guarantee more slowly.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

from plugbox.sandbox._libc import LIBC

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
STRICT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

# openat2 has the same number on every architecture that has it (generic syscall table).
_SYS_OPENAT2 = 437


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


# openat2 has one syscall number on the architectures below; elsewhere the fallback opens.
_LIBC = LIBC if platform.machine() in {"x86_64", "aarch64"} else None
_AT_FDCWD = -100
_available: bool | None = None


def openat2_available() -> bool:
    """Whether the kernel has ``openat2`` (probed once)."""
    global _available
    if _available is None:
        probe = _raw(_AT_FDCWD, ".", os.O_PATH | os.O_CLOEXEC, 0, 0) if _LIBC else -errno.ENOSYS
        if probe >= 0:
            os.close(probe)
        _available = probe >= 0
    return _available


def _raw(dir_fd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    assert _LIBC is not None
    how = _OpenHow(flags, mode, resolve)
    fd = int(
        _LIBC.syscall(
            _SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how)
        )
    )
    return fd if fd >= 0 else -ctypes.get_errno()


def open_beneath(dir_fd: int, path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` (relative, already normalised) beneath ``dir_fd`` without following symlinks.

    Raises :class:`OSError` as ``os.open`` would; a symlink anywhere on the path gives ``ELOOP``.
    """
    flags |= os.O_CLOEXEC
    creates = flags & os.O_CREAT or (flags & os.O_TMPFILE) == os.O_TMPFILE
    if not creates:
        mode = 0  # openat2 refuses a mode without O_CREAT (EINVAL), unlike open(2)
    if openat2_available():
        while True:
            fd = _raw(dir_fd, path or ".", flags, mode, STRICT)
            if fd >= 0:
                return fd
            if -fd != errno.EAGAIN:  # EAGAIN: a concurrent rename raced the lookup; try again
                raise OSError(-fd, os.strerror(-fd), path)
    return _walk(dir_fd, path, flags, mode)


def open_resolved(path: str, flags: int, resolve: int) -> int:
    """Open an absolute ``path`` with ``resolve`` flags; the fallback walks it from ``/``.

    For a path that must not pass through any symlink at all (``RESOLVE_NO_SYMLINKS``), such as
    a Landlock rule in a workspace a job can plant links in. ``ELOOP`` when one is in the way.
    """
    flags |= os.O_CLOEXEC
    if openat2_available():
        while True:
            fd = _raw(_AT_FDCWD, path, flags, 0, resolve)
            if fd >= 0:
                return fd
            if -fd != errno.EAGAIN:
                raise OSError(-fd, os.strerror(-fd), path)
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _walk(root, path.lstrip("/"), flags, 0)
    finally:
        os.close(root)


def _walk(dir_fd: int, path: str, flags: int, mode: int) -> int:
    parts = [p for p in path.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise OSError(errno.EXDEV, "'..' leaves the directory", path)
    if not parts:
        return os.open(".", flags, mode, dir_fd=dir_fd)
    current = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for name in parts[:-1]:
            nxt = os.open(
                name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current
            )
            os.close(current)
            current = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=current)
    finally:
        os.close(current)
