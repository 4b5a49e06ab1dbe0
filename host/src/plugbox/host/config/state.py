"""Where the host's own files may be, and creating the state directory so only this user enters it.

The host never takes code, configuration or state from a place a job can write. Jobs write only
below the workspace root (the root itself is never opened for writing), so the configuration
file, the state directory, the run store, ``plugin_paths`` and this process's import path are
each checked against the workspace (see docs/configuration.md, "What is refused").
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from plugbox.host.config.workspace_mark import MARK_NAME, marked_workspace_above

if TYPE_CHECKING:
    # Only a type here: `plugbox runs list` checks these paths without the pydantic models.
    from plugbox.host.config.models import HostConfig

STATE_DIR_MODE = 0o700


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it, comparing real paths (symlinks resolved).

    Resolving matters: with ``state_dir = "/srv/state"`` a symlink ``/srv/state -> /srv/ws/.s``
    puts the run store inside the workspace although the text of the paths says otherwise.
    """
    real_path, real_root = path.resolve(), root.resolve()
    return real_path == real_root or real_root in real_path.parents


def ensure_state_dir(config: HostConfig) -> Path:
    """Create ``config.state_dir`` (and parents) if needed and make it private (mode 0700).

    An existing directory that other users can enter is tightened, since it holds the run
    history; one owned by another user is refused, since we could not keep it private.
    """
    path = config.state_dir
    path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):  # pragma: no cover - mkdir(exist_ok) raises for files
        raise NotADirectoryError(f"state_dir {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise PermissionError(
            f"state_dir {path} belongs to user id {info.st_uid}, not to this user"
            f" ({os.geteuid()}); choose a directory you own"
        )
    # mkdir's mode is filtered by the umask and ignored for a directory that already exists.
    if stat.S_IMODE(info.st_mode) != STATE_DIR_MODE:
        path.chmod(STATE_DIR_MODE)
    return path


def is_below(path: Path, root: Path) -> bool:
    """Whether ``path`` is strictly below ``root`` (real paths), where a job may write."""
    real_path, real_root = path.resolve(), root.resolve()
    return real_root in real_path.parents


def untrusted_code_paths(workspace: Path, import_path: Iterable[str]) -> list[str]:
    """Entries of ``import_path`` (this process's ``sys.path``) at or below ``workspace``.

    Python imports a module from the first entry that has it, so an entry in the workspace lets
    a job that can write any folder there put code into the host (the root too: a folder below
    it is a package). ``""`` is the working directory, which ``python -m`` and ``python -c``
    put first; ``PYTHONPATH`` and ``.pth`` files add the others.
    """
    problems: list[str] = []
    for entry in dict.fromkeys(import_path):
        path = Path(entry or os.getcwd())
        if not is_inside(path, workspace):
            continue
        origin = "the working directory" if entry in ("", ".") else repr(entry)
        problems.append(
            f"import path entry {origin} ({path.resolve()}) is inside the workspace"
            f" {workspace}; run the installed `plugbox` script from outside it, without"
            " PYTHONPATH pointing into it, and keep the Python environment outside it"
        )
    return problems


def source_problems(source: Path, workspace: Path) -> list[str]:
    """Why a job could have written the config file ``source`` (read a moment ago), if it could.

    Below the workspace root jobs may write, so a file there may be a job's (a planted
    ``plugbox.toml`` once handed a job its own host id and a 60-fold timeout). At the root it is
    safe only as itself: another name for it (a hard link) may lie below. A file other users can
    write, or that belongs to someone else, is refused everywhere, as sshd refuses such keys.
    Ownership cannot tell a job's file from the operator's while jobs run as the host's uid
    (uid 0 on a root host): docs/security.md names that gap.
    """
    fix = "; keep plugbox.toml outside the workspace (e.g. /etc/plugbox/) and pass --config"
    real = source.resolve()
    if is_below(real.parent, workspace):
        return [
            f"this file is inside the workspace {workspace}, where jobs may write, so a job"
            f" could have written it{fix}"
        ]
    # A planted file may name another workspace; where it lies, it cannot fake.
    marked = marked_workspace_above(real.parent)
    if marked is not None:
        return [
            f"this file is inside the workspace {marked} (marked by {MARK_NAME}), where"
            f" jobs may write, so a job could have written it{fix}"
        ]
    try:
        info = real.stat()
    except OSError:  # pragma: no cover - it was read a moment ago
        return []
    problems = []
    if is_inside(real, workspace) and info.st_nlink > 1:
        problems.append(
            f"this file has {info.st_nlink} names (hard links); one may be inside the"
            f" workspace {workspace}, where a job could change it{fix}"
        )
    if info.st_uid not in (os.geteuid(), 0):
        problems.append(
            f"this file belongs to user id {info.st_uid}, not to this user ({os.geteuid()})"
            " or root; a job's run may have written it. Check it, then chown it"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            f"other users may change this file (mode {stat.S_IMODE(info.st_mode):04o}),"
            " so it cannot be trusted; chmod go-w it"
        )
    return problems
