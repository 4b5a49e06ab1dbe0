"""The mark a host leaves at each workspace root, so that a config planted below one is known.

A ``plugbox.toml`` is refused when it lies below the root of the workspace *it* names — but a
job that plants one in a folder it may write can name any other workspace. What the planted
file cannot fake is where it lies: the host marks the root of every workspace it uses with
``.plugbox-workspace``, and no job can create or remove that mark, because the workspace root is
never writable by a job (write rules that would open it are refused; docs/security.md). A config
file with a marked directory strictly above it lies in some workspace, where a job may have
written it, whichever workspace it names.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

MARK_NAME = ".plugbox-workspace"
_TEXT = (
    "This directory is a plugbox workspace. plugbox refuses a plugbox.toml found below it:\n"
    "jobs may write there. Keep the configuration at this root or outside, and pass --config.\n"
)


def mark_workspace(workspace: Path) -> None:
    """Leave the mark at ``workspace`` (best effort: a read-only or missing workspace keeps none)."""
    mark = workspace / MARK_NAME
    if mark.is_file():
        return
    with contextlib.suppress(OSError):
        mark.write_text(_TEXT)


def marked_workspace_above(directory: Path) -> Path | None:
    """The nearest marked workspace root strictly above ``directory`` (real paths), if any."""
    real = directory.resolve()
    for ancestor in real.parents:
        if (ancestor / MARK_NAME).is_file():
            return ancestor
    return None
