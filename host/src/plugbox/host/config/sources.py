"""Where the configuration comes from, before any of it is checked: the file, the environment
and the machine's defaults, with every path made absolute.

Kept apart from :mod:`plugbox.host.config.load` so that it imports neither pydantic nor the SDK:
``plugbox runs list`` reads the run store's location through it (:mod:`plugbox.host.quick`)
without paying for the models, and ``load_config`` builds on the very same steps, so the two
cannot disagree about which file, which variable or which directory wins.
"""

from __future__ import annotations

import copy
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Environment variable naming the config file.
CONFIG_ENV = "PLUGBOX_CONFIG"
#: Looked for in the working directory when neither a path nor ``PLUGBOX_CONFIG`` is given.
DEFAULT_CONFIG_NAME = "plugbox.toml"

#: Each environment override and the key it replaces.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "PLUGBOX_STATE_DIR": ("state_dir",),
        "PLUGBOX_DATABASE_URL": ("database_url",),
        "PLUGBOX_WORKSPACE": ("workspace",),
        "PLUGBOX_WORKERS": ("workers",),
        "PLUGBOX_HOST_ID": ("host_id",),
        "PLUGBOX_RETENTION_DAYS": ("retention", "days"),
        "PLUGBOX_RETENTION_PER_JOB": ("retention", "per_job"),
        "PLUGBOX_SHUTDOWN_GRACE": ("shutdown_grace",),
        "PLUGBOX_LEASE": ("lease",),
        "PLUGBOX_DISABLED_PLUGINS": ("disabled_plugins",),
        "PLUGBOX_HTTP_LISTEN": ("http", "listen"),
    }
)

#: A key (as a path of table names) and what is wrong with its value.
KeyProblem = tuple[tuple[str, ...], str]
#: Makes a database URL someone wrote absolute from a directory (and the home directory);
#: raises ValueError for a URL the store cannot use.
AnchorUrl = Callable[[str, Path, Path], str]


def find_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to read: ``path``, else ``$PLUGBOX_CONFIG``, else ``./plugbox.toml``.

    ``None`` when none was named and ``./plugbox.toml`` does not exist. A named file that is
    missing is returned all the same, so that reading it reports the problem.
    """
    env = os.environ if env is None else env
    named = path if path is not None else env.get(CONFIG_ENV) or None
    if named is not None:
        return Path(named).expanduser().absolute()
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.exists() else None


def with_env(
    raw: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The file's data with environment overrides applied, and which keys each variable set."""
    data = copy.deepcopy(raw)
    origins: dict[tuple[str, ...], str] = {}
    for name, key in ENV_OVERRIDES.items():
        value = env.get(name)
        if value is None:
            continue
        if name == "PLUGBOX_DISABLED_PLUGINS":
            # Set-but-empty means "none": the only way to re-enable what the file disables.
            parsed: object = [item.strip() for item in value.split(",") if item.strip()]
        elif not value.strip():
            continue  # an empty variable is treated as unset, as shells make that easy to do
        else:
            parsed = value.strip()
        table = data
        for part in key[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                break  # the file's own value is wrong; validation reports it there
        else:
            table[key[-1]] = parsed
            origins[key] = name
    return data, origins


def anchor(
    data: dict[str, Any],
    origins: Mapping[tuple[str, ...], str],
    base: Path,
    cwd: Path,
    env: Mapping[str, str],
    anchor_url: AnchorUrl,
) -> list[KeyProblem]:
    """Fill the machine-dependent defaults and make every path absolute, in place.

    A relative path is anchored at ``base`` (the config file's directory) when the file gave
    it, at ``cwd`` when an environment variable or option did (``origins``).
    """
    problems: list[KeyProblem] = []
    home = Path(env.get("HOME") or Path.home())

    def place(key: str, default: Path) -> None:
        value = data.get(key)
        if value is None:
            data[key] = default
            return
        if not isinstance(value, str):
            return  # the model reports the wrong type
        if not value.strip():
            problems.append(((key,), "must not be empty"))
            return
        data[key] = absolute(value, cwd if (key,) in origins else base, home)

    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    state_root = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "state"
    place("state_dir", state_root / "plugbox")
    place("workspace", cwd)
    paths = data.get("plugin_paths")
    if isinstance(paths, list):
        data["plugin_paths"] = [absolute(p, base, home) if isinstance(p, str) else p for p in paths]

    state_dir = data["state_dir"]
    url = data.get("database_url")
    if url is None and isinstance(state_dir, Path):
        data["database_url"] = f"sqlite:///{state_dir / 'plugbox.db'}"
    elif isinstance(url, str):
        where = cwd if ("database_url",) in origins else base
        try:
            data["database_url"] = anchor_url(url, where, home)
        except ValueError as error:
            problems.append((("database_url",), str(error)))
    return problems


def absolute(value: str, anchor: Path, home: Path) -> Path:
    """``value`` as a normalised absolute path: ``~`` is ``home``, a relative one is below
    ``anchor``."""
    path = Path(value)
    if value == "~" or value.startswith("~/"):
        path = home / value[2:]
    return Path(os.path.normpath(anchor / path))
