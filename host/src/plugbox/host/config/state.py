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


def untrusted_code_paths(config: HostConfig, import_path: Iterable[str]) -> list[str]:
    """Entries of ``import_path`` (this process's ``sys.path``) at or below the workspace root.

    Python imports a module from the first entry that has it, so an entry in the workspace lets
    a job that can write any folder there put code into the host (the root too: a folder below
    it is a package). ``""`` is the working directory, which ``python -m`` and ``python -c``
    put first; ``PYTHONPATH`` and ``.pth`` files add the others.
    """
    problems: list[str] = []
    workspace = config.workspace
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
