"""Preparing a run's workspace: the directories a job may write must exist before confinement.

Landlock rules attach to existing directories, so before the fork the parent creates each write
root (``.plugbox/example`` for ``.plugbox/example/**``). It does so component by component beneath
the workspace descriptor without following symlinks, so a planted link cannot make the host create
directories elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from plugbox.sandbox._openat2 import open_beneath

_DIR_MODE = 0o755


def prepare_write_roots(workspace: str, roots: Iterable[str]) -> None:
    """Create every workspace-relative directory in ``roots`` (and its ancestors) if missing."""
    root_fd = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for relative in roots:
            parts = [p for p in relative.split("/") if p]
            for depth in range(1, len(parts) + 1):
                parent = "/".join(parts[: depth - 1])
                parent_fd = open_beneath(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(parts[depth - 1], _DIR_MODE, dir_fd=parent_fd)
                finally:
                    os.close(parent_fd)
    finally:
        os.close(root_fd)
