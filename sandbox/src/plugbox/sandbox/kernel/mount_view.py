"""The zygote's private mount view: the run uid may pass through folders it otherwise could not.

A root host's jobs run as the run uid (:mod:`plugbox.sandbox.run_identity`) only if that uid can
reach every path they need. Where a folder on the way lacks search permission for other users —
``/root``, mode 0700, above a pyenv Python — the zygote, once at its start, enters a mount
namespace of its own (``/`` made a recursive slave, so nothing it mounts reaches the host) and
covers that folder with a tmpfs whose mode is the folder's own plus ``o+x`` (0700 becomes 0701:
traversable, never listable), then puts every original entry back at its name: each directory,
file or device bind-mounted from a descriptor of the original taken before the cover
(``open_tree(OPEN_TREE_CLONE)`` + ``move_mount``, never a path that could follow a swapped-in
link), each symlink recreated with its target. So every path keeps its meaning, its inode and
its own permissions; only the search bit of the covered folders changes, only for the zygote
and the run children it forks (they inherit the view: nothing is done per run).

What is never covered: a needed path itself or anything beneath it — the workspace above all,
so every write (write roots the parent makes with ``mkdirat``, files a job creates) lands on the
real filesystem; the state directory, run store and cgroups are the parent's, outside this view.
``/`` is never covered. The covered folders are a snapshot of their entries: a name created in one
after the zygote started (or a mount made there) is not visible to runs until the host restarts.

Where mount namespaces fail (no ``CAP_SYS_ADMIN``, a kernel without ``open_tree``), nothing is
covered, :attr:`MountView.problem` says why, and jobs whose paths need it keep uid 0 (recorded).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plugbox.sandbox._libc import LIBC
from plugbox.sandbox.run_identity import RunIdentity

__all__ = ["MountView", "enter", "enter_for", "folders_to_open"]

CLONE_NEWNS = 0x00020000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REC = 0x4000
_MS_SLAVE = 0x80000
_MNT_DETACH = 0x2
# The new mount API has one syscall number on every architecture (generic table, Linux 5.2).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 0x1
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100
_LIBC = LIBC if platform.machine() in {"x86_64", "aarch64"} else None


@dataclass(frozen=True, slots=True)
class MountView:
    """The folders the zygote's view opened for the run uid, and why not more."""

    covered: tuple[str, ...] = ()
    problem: str = ""

    def describe(self) -> dict[str, Any]:
        """For the zygote's ``ready`` message: the parent plans runs with it."""
        return {"covered": list(self.covered), "problem": self.problem}


def folders_to_open(identity: RunIdentity, paths: Iterable[str]) -> tuple[str, ...]:
    """The folders on the way to ``paths`` that ``identity`` cannot search, outermost first.

    Only folders where the "other" bits apply to it (an owner or group without search is left
    alone: adding ``o+x`` would not help it), never ``/``, never a needed path nor anything
    beneath one.
    """
    needed = {os.path.realpath(p) for p in paths if os.path.exists(p)}
    found: set[str] = set()
    for real in needed:
        parts = real.strip("/").split("/")
        for depth in range(1, len(parts)):
            folder = "/" + "/".join(parts[:depth])
            if folder in found or any(_within(folder, n) for n in needed):
                continue
            info = os.stat(folder)
            if identity.is_other(info) and not identity.may(info, 0o1):
                found.add(folder)
    return tuple(sorted(found, key=lambda f: (f.count("/"), f)))


def enter(identity: RunIdentity | None, paths: Iterable[str]) -> MountView:
    """In the zygote, once, single-threaded, before any run: open the way to ``paths``.

    No identity (an unprivileged host) or nothing to open: no namespace is made at all.
    """
    if identity is None:
        return MountView()
    folders = folders_to_open(identity, paths)
    if not folders:
        return MountView()
    if _LIBC is None:
        return MountView((), f"no private mount view on {platform.machine()}")
    try:
        _check(_LIBC.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        # A slave of the host: host mounts still arrive, none of ours goes back.
        _check(_LIBC.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None), "making / a slave")
    except OSError as err:
        return MountView((), f"no private mount view: {err.strerror}")
    covered: list[str] = []
    for folder in folders:
        try:
            _cover(folder)
        except OSError as err:
            return MountView(tuple(covered), f"{folder} could not be opened: {err.strerror}")
        covered.append(folder)
    return MountView(tuple(covered))


def enter_for(hello: dict[str, Any]) -> dict[str, Any]:
    """:func:`enter` for the zygote's ``hello`` (``run_as``, ``reach``), described for ``ready``."""
    run_as = hello.get("run_as")
    identity = RunIdentity(int(run_as[0]), int(run_as[1])) if run_as else None
    return enter(identity, [str(p) for p in hello.get("reach", ())]).describe()


def _cover(folder: str) -> None:
    """Cover ``folder`` with a search-for-others tmpfs holding its original entries."""
    assert _LIBC is not None
    original = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(original)
        names = os.listdir(original)
        mode = stat.S_IMODE(info.st_mode) | 0o001
        options = f"mode={mode:04o},uid={info.st_uid},gid={info.st_gid},size=1m"
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        _check(
            _LIBC.mount(b"tmpfs", os.fsencode(folder), b"tmpfs", flags, options.encode()),
            f"mounting a tmpfs on {folder}",
        )
        try:
            for name in names:
                with contextlib.suppress(FileNotFoundError):  # gone since the listing
                    _restore(original, folder, name)
        except OSError:
            _LIBC.umount2(os.fsencode(folder), _MNT_DETACH)  # the folder as it was, all of it
            raise
    finally:
        os.close(original)


def _restore(original: int, folder: str, name: str) -> None:
    """Put entry ``name`` of the ``original`` directory back at ``folder/name``."""
    assert _LIBC is not None
    # A clone of the entry as it is now (with the mounts beneath it), its link never followed.
    tree = _check(
        int(
            _LIBC.syscall(
                _SYS_OPEN_TREE,
                original,
                os.fsencode(name),
                _OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_RECURSIVE | _AT_SYMLINK_NOFOLLOW,
            )
        ),
        f"open_tree({folder}/{name})",
    )
    try:
        target = os.path.join(folder, name)
        kind = os.fstat(tree).st_mode
        if stat.S_ISLNK(kind):
            os.symlink(os.readlink(name, dir_fd=original), target)
            return
        if stat.S_ISDIR(kind):
            os.mkdir(target, 0o700)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        _check(
            int(
                _LIBC.syscall(
                    _SYS_MOVE_MOUNT,
                    tree,
                    b"",
                    _AT_FDCWD,
                    os.fsencode(target),
                    _MOVE_MOUNT_F_EMPTY_PATH,
                )
            ),
            f"move_mount onto {target}",
        )
    finally:
        os.close(tree)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
