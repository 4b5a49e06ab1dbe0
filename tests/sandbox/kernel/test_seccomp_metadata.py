"""seccomp, file metadata (issue 9, class C): every call that changes a mode, owner, time or
extended attribute, the inode-attribute ioctls, and set-id bits at creation.

Landlock has no hook on any of these, so without the filter they reach every file the job's uid
owns — outside the workspace too, and an unprivileged host's jobs share its uid. Each test forks
a child, loads the filter and attacks the child's own file; a control child makes the same calls
unfiltered and they work, so the EPERM is the filter's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbox.sandbox.kernel import Filter
from plugbox.sandbox.kernel.capabilities import drop_all
from plugbox.sandbox.kernel.seccomp_rules import FS_ATTRIBUTE_IOCTLS

from ._seccomp_helpers import (
    AT_FDCWD,
    NR,
    ROOT,
    SKIP,
    assert_filter_answers,
    both,
    build,
    c_path,
    keep,
)
from .conftest import LIBC, errno_of, in_child, syscall_errno

pytestmark = SKIP


@pytest.fixture(scope="module")
def no_exec() -> Filter:
    return build()


# -- file metadata -------------------------------------------------------------------------------
@pytest.fixture
def owned(tmp_path: Path) -> Path:
    target = tmp_path / "own.txt"
    target.write_text("mine\n")
    target.chmod(0o644)
    os.utime(target, (1_000_000, 1_000_000))
    return target


def _metadata_attacks(target: Path) -> Callable[[], dict[str, int]]:
    path = c_path(target)
    uid, gid = os.getuid(), os.getgid()
    name, value = c_path("user.plugbox"), c_path("1")
    xattr_args = (ctypes.c_uint64 * 2)(value, 1)  # struct xattr_args {u64 value; u32 size, flags}
    file_attr = (ctypes.c_uint32 * 6)()  # struct file_attr: u64 xflags, then four u32
    keep(xattr_args, file_attr)

    def attacks() -> dict[str, int]:
        fd = os.open(target, os.O_RDONLY)
        found = {
            "chmod": errno_of(lambda: os.chmod(target, 0o600)),
            "fchmod": errno_of(lambda: os.chmod(fd, 0o600)),
            "chmod_raw": syscall_errno(NR["chmod"], path, 0o600),
            "fchmodat": syscall_errno(NR["fchmodat"], AT_FDCWD, path, 0o600),
            "fchmodat2": syscall_errno(NR["fchmodat2"], AT_FDCWD, path, 0o600, 0),
            "chown": errno_of(lambda: os.chown(target, uid, gid)),
            "fchown": errno_of(lambda: os.fchown(fd, uid, gid)),
            "lchown": syscall_errno(NR["lchown"], path, uid, gid),
            "chown_raw": syscall_errno(NR["chown"], path, uid, gid),
            "fchownat": syscall_errno(NR["fchownat"], AT_FDCWD, path, uid, gid, 0),
            "utime": errno_of(lambda: os.utime(target, (2, 2))),
            "futimens": errno_of(lambda: os.utime(fd, (2, 2))),
            "utime_raw": syscall_errno(NR["utime"], path, 0),
            "utimes": syscall_errno(NR["utimes"], path, 0),
            "futimesat": syscall_errno(NR["futimesat"], AT_FDCWD, path, 0),
            "setxattr": errno_of(lambda: os.setxattr(target, "user.plugbox", b"1")),
            "fsetxattr": errno_of(lambda: os.setxattr(fd, "user.plugbox", b"1")),
            "lsetxattr": errno_of(
                lambda: os.setxattr(target, "user.plugbox", b"1", follow_symlinks=False)
            ),
            "setxattrat": syscall_errno(
                NR["setxattrat"], AT_FDCWD, path, 0, name, ctypes.addressof(xattr_args), 16
            ),
            "removexattr": errno_of(lambda: os.removexattr(target, "user.plugbox")),
            "fremovexattr": errno_of(lambda: os.removexattr(fd, "user.plugbox")),
            "lremovexattr": errno_of(
                lambda: os.removexattr(target, "user.plugbox", follow_symlinks=False)
            ),
            "removexattrat": syscall_errno(NR["removexattrat"], AT_FDCWD, path, 0, name),
            "file_setattr": syscall_errno(
                NR["file_setattr"], AT_FDCWD, path, ctypes.addressof(file_attr), 24, 0
            ),
        }
        os.close(fd)
        return found

    return attacks


def test_every_metadata_call_is_denied(no_exec: Filter, owned: Path) -> None:
    """Landlock has no hook on metadata: these reach any file the uid owns, outside the
    workspace too. Unfiltered every one works on the child's own file (ENODATA: a removexattr
    after an earlier one took the attribute away)."""
    unfiltered, filtered = both(no_exec, _metadata_attacks(owned))
    assert_filter_answers(unfiltered, filtered)
    assert set(unfiltered.values()) <= {0, errno.ENODATA}, unfiltered


def test_metadata_is_unchanged_after_the_filtered_attacks(no_exec: Filter, owned: Path) -> None:
    def filtered() -> dict[str, int]:
        no_exec.load()
        return _metadata_attacks(owned)()

    in_child(filtered).unwrap()
    after = owned.stat()
    assert (stat.S_IMODE(after.st_mode), after.st_mtime) == (0o644, 1_000_000)
    assert "user.plugbox" not in _xattrs(owned)


def _xattrs(path: Path) -> list[str]:
    try:
        return os.listxattr(path)
    except OSError:
        return []


_FS_IOC_GETFLAGS = 0x80086601


@pytest.mark.parametrize("command", FS_ATTRIBUTE_IOCTLS.values(), ids=FS_ATTRIBUTE_IOCTLS.keys())
def test_inode_attribute_ioctls_are_denied(no_exec: Filter, owned: Path, command: int) -> None:
    """Also with junk in the upper half of the command, which the kernel drops (it reads an
    unsigned int): a 64-bit equality rule would let that through."""
    flags = ctypes.c_long(0)
    buffer = ctypes.create_string_buffer(128)  # big enough for every argument struct
    keep(flags, buffer)

    def attacks() -> dict[str, int]:
        fd = os.open(owned, os.O_RDONLY)
        argument = ctypes.addressof(buffer)
        if command in (FS_ATTRIBUTE_IOCTLS["FS_IOC_SETFLAGS"],):
            LIBC.ioctl(fd, ctypes.c_ulong(_FS_IOC_GETFLAGS), ctypes.byref(flags))
            argument = ctypes.addressof(flags)  # set the flags it already has: a no-op
        return {
            "plain": syscall_errno(NR["ioctl"], fd, command, argument),
            "junk": syscall_errno(NR["ioctl"], fd, command | 1 << 32, argument),
        }

    unfiltered, filtered = both(no_exec, attacks)
    assert filtered == {"plain": errno.EPERM, "junk": errno.EPERM}
    assert errno.EPERM not in unfiltered.values(), unfiltered


_O_TMPFILE = 0o20200000


@pytest.mark.parametrize("bits", [0o4000, 0o2000], ids=["setuid", "setgid"])
def test_set_id_bits_cannot_be_created(no_exec: Filter, tmp_path: Path, bits: int) -> None:
    mode = 0o755 | bits
    tmp_path.chmod(0o777)

    def attacks() -> dict[str, int]:
        os.umask(0)
        return {
            "open": errno_of(lambda: os.close(os.open(tmp_path / "a", os.O_CREAT | os.O_WRONLY, mode))),
            "openat": syscall_errno(NR["openat"], AT_FDCWD, c_path(tmp_path / "b"),
                                    os.O_CREAT | os.O_WRONLY, mode),
            "creat": syscall_errno(NR["creat"], c_path(tmp_path / "c"), mode),
            "mknod": errno_of(lambda: os.mknod(tmp_path / "d", stat.S_IFREG | mode)),
            "mknodat": errno_of(lambda: os.mknod("e", stat.S_IFREG | mode, dir_fd=os.open(tmp_path, os.O_RDONLY))),
            "o_tmpfile": errno_of(lambda: os.close(os.open(tmp_path, _O_TMPFILE | os.O_WRONLY, mode))),
            "junk_upper_mode": syscall_errno(NR["openat"], AT_FDCWD, c_path(tmp_path / "f"),
                                             os.O_CREAT | os.O_WRONLY, mode | 1 << 40),
        }  # fmt: skip

    unfiltered = in_child(attacks).unwrap()
    created = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    for path in tmp_path.iterdir():
        path.unlink()

    def filtered() -> tuple[dict[str, int], int]:
        no_exec.load()
        plain = errno_of(lambda: os.close(os.open(tmp_path / "plain", os.O_CREAT, 0o755)))
        return attacks(), plain

    denied, plain = in_child(filtered).unwrap()
    assert denied == dict.fromkeys(denied, errno.EPERM)
    assert plain == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["plain"]
    # The control: every call made a set-id file (set-gid only where the group is ours, which
    # it is here), so the filter is what refused.
    assert set(unfiltered.values()) == {0}, unfiltered
    assert all(m & bits for m in created.values()), created


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _openat2_set_uid(path: Path) -> int:
    how = _OpenHow(os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o4755, 0)
    fd = int(LIBC.syscall(ctypes.c_long(NR["openat2"]), AT_FDCWD, ctypes.c_char_p(os.fsencode(path)),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))))  # fmt: skip
    if fd < 0:
        raise OSError(ctypes.get_errno(), "openat2")
    return fd


_FILLERS: dict[str, Callable[[int, Path], object]] = {
    "write": lambda fd, _: os.write(fd, b"\x7fELF"),
    "pwrite": lambda fd, _: os.pwrite(fd, b"\x7fELF", 0),
    "ftruncate": lambda fd, _: os.ftruncate(fd, 4096),
    "truncate": lambda _, path: os.truncate(path, 4096),
    "fallocate": lambda fd, _: os.posix_fallocate(fd, 0, 4096),
    "copy_file_range": lambda fd, path: os.copy_file_range(_source(path), fd, 4),
    "sendfile": lambda fd, path: os.sendfile(fd, _source(path), 0, 4),
}


def _source(beside: Path) -> int:
    """A file with content on the same filesystem (copy_file_range refuses to cross one)."""
    source = beside.with_name("source")
    source.write_bytes(b"\x7fELF")
    return os.open(source, os.O_RDONLY)


@pytest.mark.parametrize("filler", _FILLERS, ids=_FILLERS)
def test_a_set_uid_file_made_by_openat2_is_empty_and_any_fill_strips_the_bit(
    no_exec: Filter, tmp_path: Path, filler: str
) -> None:
    """openat2 keeps its mode in a struct seccomp cannot read (and the runtime proxy needs
    openat2), so a set-uid file *can* be created: it is empty, and every way to give it content
    makes the kernel strip S_ISUID, because the writer lacks CAP_FSETID. As root the control
    (capabilities kept, no filter) shows the bit surviving the same fill."""
    tmp_path.chmod(0o777)
    target = tmp_path / "planted"

    def fill(drop: bool) -> tuple[int, int]:
        os.umask(0)
        if drop:
            drop_all()
            no_exec.load()
        fd = _openat2_set_uid(target)
        created = os.fstat(fd).st_mode
        _FILLERS[filler](fd, target)
        return created, os.fstat(fd).st_mode

    created, filled = in_child(lambda: fill(True)).unwrap()
    assert created & stat.S_ISUID  # openat2 made it set-uid (and empty) under the filter ...
    assert not filled & stat.S_ISUID  # ... and giving it content took the bit away
    assert os.stat(target).st_size > 0
    if ROOT:
        target.unlink()
        created, kept = in_child(lambda: fill(False)).unwrap()
        assert kept & stat.S_ISUID  # with CAP_FSETID the same fill keeps it


def test_what_common_library_calls_do_under_the_filter(no_exec: Filter, tmp_path: Path) -> None:
    """For the docs: which everyday calls keep working, and which now raise PermissionError.
    Creating with a mode works (os.open, tempfile, sqlite3's journal); changing a mode, an
    owner or times afterwards does not (shutil.copy's copymode, copy2's copystat). Path.touch
    on an existing file falls back to an open and silently leaves its mtime alone."""
    import shutil
    import sqlite3
    import tempfile

    source = tmp_path / "source.txt"
    source.write_text("data\n")
    existing = tmp_path / "existing.txt"
    existing.write_text("old\n")
    os.utime(existing, (1_000_000, 1_000_000))

    def child() -> dict[str, object]:
        drop_all()
        no_exec.load()

        def database() -> None:
            with sqlite3.connect(tmp_path / "db.sqlite") as db:
                db.execute("create table t (x)")
                db.execute("insert into t values (1)")

        return {
            "os.open with a mode": errno_of(
                lambda: os.close(os.open(tmp_path / "secret", os.O_CREAT | os.O_WRONLY, 0o600))
            ),
            "tempfile": errno_of(lambda: os.close(tempfile.mkstemp(dir=tmp_path)[0])),
            "sqlite3": errno_of(database),
            "shutil.copyfile": errno_of(lambda: shutil.copyfile(source, tmp_path / "a")),
            "shutil.copy": errno_of(lambda: shutil.copy(source, tmp_path / "b")),
            "shutil.copy2": errno_of(lambda: shutil.copy2(source, tmp_path / "c")),
            "Path.touch existing": errno_of(existing.touch),
            "os.chmod": errno_of(lambda: os.chmod(source, 0o600)),
        }

    assert in_child(child).unwrap() == {
        "os.open with a mode": 0,
        "tempfile": 0,
        "sqlite3": 0,
        "shutil.copyfile": 0,
        "shutil.copy": errno.EPERM,
        "shutil.copy2": errno.EPERM,
        "Path.touch existing": 0,
        "os.chmod": errno.EPERM,
    }
    assert existing.stat().st_mtime == 1_000_000  # touch did not (could not) update it
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
