"""Changing metadata (issue 9, class C): modes, owners, times, xattrs, inode flags, set-id bits.

Landlock has no hook on metadata calls, and an unprivileged host's jobs share its uid, so every
variant is tried on a file outside the workspace (``victim/file.txt``), on the host's state
directory, and — for set-id bits — in the job's own folder: by path, through an ``O_PATH``
descriptor (which Landlock does not check), with the ``*at`` calls, and by ioctl.
"""

from __future__ import annotations

import ctypes
import os
import stat
from typing import Any

import plugbox_hostile
from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, outside, report, victim

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
_AT_EMPTY_PATH = 0x1000
_NR = {"fchmodat": 268, "fchmodat2": 452, "fchownat": 260, "utimensat": 280,
       "setxattrat": 463, "removexattrat": 466, "file_setattr": 469, "openat2": 437}  # fmt: skip
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_IOC_FSSETXATTR = 0x80086601, 0x40086602, 0x401C5820
_FOLDER = ".plugbox/eve"


def _raw(name: str, *args: Any) -> int:
    """A raw syscall; OSError with its errno when it fails (as Python's wrappers do)."""
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(_LIBC.syscall(ctypes.c_long(_NR[name]), *cargs))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _path_fd(path: str) -> int:
    return os.open(path, os.O_PATH)  # no Landlock check: O_PATH opens nothing


def _fd_variants(path: str) -> dict[str, dict[str, Any]]:
    """Through an O_PATH descriptor and AT_EMPTY_PATH, and relative to an O_PATH directory."""
    empty = ctypes.c_char_p(b"")
    name = ctypes.c_char_p(os.path.basename(path).encode())
    times = (ctypes.c_long * 4)(2, 0, 2, 0)
    xattr_name = ctypes.c_char_p(b"user.eve")
    value = ctypes.create_string_buffer(b"1")
    xattr_args = (ctypes.c_uint64 * 2)(ctypes.addressof(value), 1)
    file_attr = (ctypes.c_uint32 * 6)()

    def at(call: str, *args: Any) -> Any:
        fd = _path_fd(path)
        try:
            return _raw(call, fd, empty, *args)
        finally:
            os.close(fd)

    def in_dir(call: str, *args: Any) -> Any:
        fd = _path_fd(os.path.dirname(path))
        try:
            return _raw(call, fd, name, *args)
        finally:
            os.close(fd)

    return {
        "fchmodat2_fd": attempt(at, "fchmodat2", 0o4777, _AT_EMPTY_PATH),
        "fchownat_fd": attempt(at, "fchownat", 4444, 4444, _AT_EMPTY_PATH),
        "utimensat_fd": attempt(at, "utimensat", times, _AT_EMPTY_PATH),
        "setxattrat_fd": attempt(at, "setxattrat", _AT_EMPTY_PATH, xattr_name, xattr_args, 16),
        "file_setattr_fd": attempt(at, "file_setattr", file_attr, 24, _AT_EMPTY_PATH),
        "fchmodat_dir": attempt(in_dir, "fchmodat", 0o4777),
        "fchownat_dir": attempt(in_dir, "fchownat", 4444, 4444, 0),
        "utimensat_dir": attempt(in_dir, "utimensat", times, 0),
        "removexattrat_dir": attempt(in_dir, "removexattrat", 0, xattr_name),
    }


def _same_flags_ioctl(path: str, command: int) -> int:
    """Set a file's inode flags to what they are (a no-op if it got through): needs a readable
    descriptor and ownership, nothing more."""
    flags = ctypes.c_long(0)
    fd = os.open(path, os.O_RDONLY)
    try:
        _LIBC.ioctl(fd, ctypes.c_ulong(_FS_IOC_GETFLAGS), ctypes.byref(flags))
        argument = (
            ctypes.byref(flags)
            if command == _FS_IOC_SETFLAGS
            else ctypes.byref((ctypes.c_uint32 * 8)())
        )
        if _LIBC.ioctl(fd, ctypes.c_ulong(command), argument) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return flags.value
    finally:
        os.close(fd)


@job("metadata-outside", schedule="@daily", timeout="30s",
     permissions=perms.presets.plugin_workspace("eve"))  # fmt: skip
def metadata_outside(ctx: JobContext) -> dict[str, Any]:
    target, state = victim("file.txt"), outside("state")
    installed = plugbox_hostile.__file__  # readable (it is being imported), owned by the installer
    return report(
        {"stat": list(os.stat(target))[:10], "installed": installed},
        chmod=attempt(os.chmod, target, 0o4777),
        chown=attempt(os.chown, target, 4444, 4444),
        lchown=attempt(os.lchown, target, 4444, 4444),
        utime=attempt(os.utime, target, (2, 2)),
        setxattr=attempt(os.setxattr, target, "user.eve", b"1"),
        lsetxattr=attempt(os.setxattr, target, "user.eve", b"1", follow_symlinks=False),
        removexattr=attempt(os.removexattr, target, "user.eve"),
        **_fd_variants(target),
        chmod_state=attempt(os.chmod, state, 0o777),
        chown_state=attempt(os.chown, state, 4444, 4444),
        utime_state=attempt(os.utime, state, (2, 2)),
        **{f"{k}_state": v for k, v in _fd_variants(state).items() if k.endswith("_fd")},
        ioctl_setflags=attempt(_same_flags_ioctl, installed, _FS_IOC_SETFLAGS),
        ioctl_fssetxattr=attempt(_same_flags_ioctl, installed, _FS_IOC_FSSETXATTR),
    )


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _openat2_set_uid(path: str) -> dict[str, int]:
    """openat2 keeps its mode where seccomp cannot look: the file is made set-uid, but empty."""
    how = _OpenHow(os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o4755, 0)
    fd = _raw("openat2", -100, ctypes.c_char_p(path.encode()), ctypes.byref(how),
              ctypes.sizeof(how))  # fmt: skip
    created = os.fstat(fd).st_mode
    try:
        os.write(fd, b"#!/bin/sh\nid\n")
    finally:
        os.close(fd)
    return {"created": created, "filled": os.stat(path).st_mode}


@job("setid-create", schedule="@daily", timeout="30s",
     permissions=perms.presets.plugin_workspace("eve"))  # fmt: skip
def setid_create(ctx: JobContext) -> dict[str, Any]:
    os.makedirs(_FOLDER, exist_ok=True)
    os.umask(0)
    plain = f"{_FOLDER}/plain"
    with open(plain, "wb") as handle:  # the control: an ordinary file is made and written
        handle.write(b"x")
    folder_fd = os.open(_FOLDER, os.O_RDONLY)

    def open_creat(name: str, mode: int) -> None:
        os.close(os.open(f"{_FOLDER}/{name}", os.O_CREAT | os.O_WRONLY, mode))

    outcome = _openat2_set_uid(f"{_FOLDER}/openat2")
    return report(
        {"plain": stat.S_IMODE(os.stat(plain).st_mode), "openat2": outcome},
        open_setuid=attempt(open_creat, "suid", 0o4755),
        open_setgid=attempt(open_creat, "sgid", 0o2755),
        o_tmpfile=attempt(lambda: os.open(_FOLDER, os.O_TMPFILE | os.O_WRONLY, 0o4755)),
        mknod=attempt(os.mknod, f"{_FOLDER}/mknod", stat.S_IFREG | 0o4755),
        mknodat=attempt(os.mknod, "mknodat", stat.S_IFREG | 0o4755, dir_fd=folder_fd),
        chmod_u_s=attempt(os.chmod, plain, 0o4755),
        fchmod_g_s=attempt(lambda: os.chmod(os.open(plain, os.O_RDONLY), 0o2755)),
        openat2_kept_set_uid={
            "ok": bool(outcome["filled"] & stat.S_ISUID), "errno": None,
            "error": f"mode after a write: {outcome['filled']:o}",
        },
    )  # fmt: skip


def _capabilities() -> dict[str, Any]:
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if _LIBC.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    bounding = sum(1 << cap for cap in range(64) if _LIBC.prctl(23, cap, 0, 0, 0) == 1)
    ambient = sum(1 << cap for cap in range(64) if _LIBC.prctl(47, 1, cap, 0, 0) == 1)
    return {
        "effective": data[0] | data[3] << 32,
        "permitted": data[1] | data[4] << 32,
        "inheritable": data[2] | data[5] << 32,
        "ambient": ambient,
        "bounding": bounding,
        "no_new_privs": _LIBC.prctl(39, 0, 0, 0, 0),
        "uid": os.getresuid(),
        "gid": os.getresgid(),
    }


@job("capabilities", schedule="@daily", timeout="30s", permissions=perms.Permissions())
def capabilities(ctx: JobContext) -> dict[str, Any]:
    held = _capabilities()
    return report(held, regain_cap_fowner=attempt(_raise_fowner))


def _raise_fowner() -> None:
    """capset with CAP_FOWNER put back: only a process that still permits it may."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)(1 << 3, 1 << 3, 0, 0, 0, 0)
    if _LIBC.capset(header, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


JOBS = [metadata_outside, setid_create, capabilities]
