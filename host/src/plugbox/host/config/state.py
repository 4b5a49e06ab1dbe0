"""The state directory: where it may be, and creating it so that only this user can enter it."""

from __future__ import annotations

import os
import stat
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
