"""Preparing a run's workspace: the directories a job may write must exist before confinement.

Landlock rules attach to existing directories, so before each fork the parent creates each write
root (``.plugbox/example`` for ``.plugbox/example/**``). It does so one component at a time,
``mkdirat`` relative to a descriptor opened beneath the workspace without following any link, so
a link a job planted can neither make the host create directories elsewhere nor pass for a write
root: an existing symlink (or a file) where a write root or one of its parents should be fails
the spawn with :class:`WriteRootRefused`.

This check is the friendly, early one. The one that decides is in the zygote, where the
Landlock rule is made from a descriptor opened the same way
(:class:`~plugbox.sandbox.kernel.landlock.LinkRefused`): a job that swaps a folder for a link
after this check still gets no rule through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable

from plugbox.sandbox._openat2 import open_beneath

_DIR_MODE = 0o755


class WriteRootRefused(OSError):  # noqa: N818 - the name reads as the condition
    """A write root, or a folder on its way, is a symlink or not a folder."""


def prepare_write_roots(workspace: str, roots: Iterable[str]) -> None:
    """Create every workspace-relative directory in ``roots`` (and its ancestors) if missing.

    Raises :class:`WriteRootRefused` naming the path when one is a symlink or a file.
    """
    root_fd = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for relative in roots:
            parts = [p for p in relative.split("/") if p]
            for depth in range(1, len(parts) + 1):
                parent_fd = _open_folder(root_fd, workspace, relative, parts[: depth - 1])
                try:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(parts[depth - 1], _DIR_MODE, dir_fd=parent_fd)
                finally:
                    os.close(parent_fd)
            os.close(_open_folder(root_fd, workspace, relative, parts))
    finally:
        os.close(root_fd)


def _open_folder(root_fd: int, workspace: str, root: str, parts: list[str]) -> int:
    path = "/".join(parts)
    try:
        return open_beneath(root_fd, path, os.O_PATH | os.O_DIRECTORY)
    except OSError as err:
        if err.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
            raise
        what = "a symbolic link" if err.errno != errno.ENOTDIR else "not a folder"
        raise WriteRootRefused(
            err.errno,
            f"the write root {root!r} cannot be prepared: {path!r} (in the workspace "
            f"{workspace}) or a folder on its way is {what}; permission rules never follow links "
            "(remove it, or declare the real path)",
            os.path.join(workspace, path),
        ) from None
