"""Finding, reading and checking ``plugbox.toml``, with ``PLUGBOX_*`` environment overrides.

Precedence, highest first: environment variable, config file, built-in default. Each value is
anchored according to where it came from: a relative path in the file is relative to the file's
directory (so a config works wherever ``plugbox`` is started), one in an environment variable or
a default is relative to the working directory.

Every problem is collected before anything is raised, so an operator fixes a config in one pass;
each names the key as a TOML dotted path (``plugins.example.permissions.fs[0].mode``) or the
environment variable it came from.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import socket
import stat
import tomllib
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from plugbox.host.config.models import HostConfig
from plugbox.host.config.state import is_below, is_inside
from plugbox.host.config.webhooks import check_webhooks
from plugbox.host.config.workspace_mark import MARK_NAME, mark_workspace, marked_workspace_above
from plugbox.sdk import PlugboxError, Problem
from plugbox.sdk.permissions import lint_permissions

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

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"^(?P<reason>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$")  # fmt: skip


class ConfigError(PlugboxError, ValueError):
    """A configuration that cannot be used; carries every problem, each naming its key."""

    def __init__(self, problems: Iterable[Problem], source: Path | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"invalid plugbox configuration{where} ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


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


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> HostConfig:
    """Read, merge and check the configuration; raise :class:`ConfigError` listing every problem.

    ``env`` (default ``os.environ``) supplies the ``PLUGBOX_*`` overrides, ``$PLUGBOX_CONFIG``,
    the home and XDG directories for defaults, and ``${NAME}`` in job schedules.
    ``database_url`` is the CLI's ``--db``, which wins over both.
    """
    env = os.environ if env is None else env
    source = find_config(path, env)
    raw = _read(source) if source is not None else {}
    cwd = Path.cwd()
    base = source.parent if source is not None else cwd
    data, origins = _with_env(raw, env)
    if database_url is not None:
        data["database_url"], origins[("database_url",)] = database_url, "--db"
    defaulted = {key for key in ("state_dir", "database_url") if key not in data}
    problems = _anchor(data, origins, base, cwd, env)
    try:
        config = HostConfig.model_validate(data, context={"env": env})
    except ValidationError as error:
        problems += _from_pydantic(error, origins)
        raise ConfigError(problems, source) from None
    if problems:
        raise ConfigError(problems, source)
    # Only for a configuration whose values are all valid: these checks build on them.
    problems = _check(config, origins, defaulted)
    if problems:
        raise ConfigError(problems, source)
    if source is not None:
        problems = _source_problems(source, config)
        if problems:
            raise ConfigError(problems, source)
    mark_workspace(config.workspace)
    config._source = source
    return config


def _source_problems(source: Path, config: HostConfig) -> list[Problem]:
    """Whether a job could have written the file we just read.

    Below the workspace root jobs may write, so a file there may be a job's (a planted
    ``plugbox.toml`` once handed a job its own host id and a 60-fold timeout). At the root it is
    safe only as itself: another name for it (a hard link) may lie below. A file other users can
    write, or that belongs to someone else, is refused everywhere, as sshd refuses such keys.
    Ownership cannot tell a job's file from the operator's while jobs run as the host's uid
    (uid 0 on a root host): docs/security.md names that gap.
    """
    workspace = config.workspace
    fix = "; keep plugbox.toml outside the workspace (e.g. /etc/plugbox/) and pass --config"
    real = source.resolve()
    if is_below(real.parent, workspace):
        return [
            Problem(
                "",
                f"this file is inside the workspace {workspace}, where jobs may write, so a job"
                f" could have written it{fix}",
            )
        ]
    # A planted file may name another workspace; where it lies, it cannot fake.
    marked = marked_workspace_above(real.parent)
    if marked is not None:
        return [
            Problem(
                "",
                f"this file is inside the workspace {marked} (marked by {MARK_NAME}), where"
                f" jobs may write, so a job could have written it{fix}",
            )
        ]
    try:
        info = real.stat()
    except OSError:  # pragma: no cover - it was read a moment ago
        return []
    problems = []
    if is_inside(real, workspace) and info.st_nlink > 1:
        problems.append(
            Problem(
                "",
                f"this file has {info.st_nlink} names (hard links); one may be inside the"
                f" workspace {workspace}, where a job could change it{fix}",
            )
        )
    if info.st_uid not in (os.geteuid(), 0):
        problems.append(
            Problem(
                "",
                f"this file belongs to user id {info.st_uid}, not to this user ({os.geteuid()})"
                " or root; a job's run may have written it. Check it, then chown it",
            )
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            Problem(
                "",
                f"other users may change this file (mode {stat.S_IMODE(info.st_mode):04o}),"
                " so it cannot be trusted; chmod go-w it",
            )
        )
    return problems


def _read(source: Path) -> dict[str, Any]:
    try:
        with source.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([Problem("", "file not found")], source) from None
    except tomllib.TOMLDecodeError as error:
        match = _TOML_POSITION.match(str(error))
        if match is None:  # pragma: no cover - every tomllib message carries a position
            raise ConfigError([Problem("", f"not valid TOML: {error}")], source) from None
        where = f"line {match['line']}, column {match['col']}" if match["line"] else "end of file"
        problem = Problem(where, f"not valid TOML: {match['reason']}")
        raise ConfigError([problem], source) from None
    except UnicodeDecodeError as error:
        raise ConfigError([Problem("", f"not UTF-8 text: {error.reason}")], source) from None
    except OSError as error:
        raise ConfigError([Problem("", f"cannot read: {error.strerror}")], source) from None


def _with_env(
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


def _anchor(
    data: dict[str, Any],
    origins: Mapping[tuple[str, ...], str],
    base: Path,
    cwd: Path,
    env: Mapping[str, str],
) -> list[Problem]:
    """Fill the machine-dependent defaults and make every path absolute, in place."""
    problems: list[Problem] = []
    home = Path(env.get("HOME") or Path.home())

    def place(key: str, default: Path) -> None:
        value = data.get(key)
        if value is None:
            data[key] = default
            return
        if not isinstance(value, str):
            return  # the model reports the wrong type
        if not value.strip():
            problems.append(Problem(_where((key,), origins), "must not be empty"))
            return
        anchor = cwd if (key,) in origins else base
        data[key] = _absolute(value, anchor, home)

    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    state_root = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "state"
    place("state_dir", state_root / "plugbox")
    place("workspace", cwd)
    paths = data.get("plugin_paths")
    if isinstance(paths, list):
        data["plugin_paths"] = [
            _absolute(p, base, home) if isinstance(p, str) else p for p in paths
        ]
    data.setdefault("workers", os.cpu_count() or 1)
    data.setdefault("host_id", socket.gethostname() or "localhost")

    state_dir = data["state_dir"]
    url = data.get("database_url")
    if url is None and isinstance(state_dir, Path):
        data["database_url"] = f"sqlite:///{state_dir / 'plugbox.db'}"
    elif isinstance(url, str):
        anchor = cwd if ("database_url",) in origins else base
        try:
            data["database_url"] = _anchor_url(url, anchor, home)
        except ValueError as error:
            problems.append(Problem(_where(("database_url",), origins), str(error)))
    return problems


def _absolute(value: str, anchor: Path, home: Path) -> Path:
    path = Path(value)
    if value == "~" or value.startswith("~/"):
        path = home / value[2:]
    return Path(os.path.normpath(anchor / path))


def _anchor_url(url: str, anchor: Path, home: Path) -> str:
    """Check a run store URL; a relative SQLite file path becomes absolute from ``anchor``.

    A PostgreSQL URL is kept as written (its password too: the store needs it); every message
    about it shows the password masked.
    """
    # SQLAlchemy costs a command ~0.3 s to import: only a URL someone wrote is worth it here.
    from plugbox.host.store.dialect import parse_url

    parsed = parse_url(url)  # UnsupportedDatabaseError (a ValueError) names what is accepted
    if parsed.get_backend_name() != "sqlite":
        return url
    database = parsed.database
    if database and database != ":memory:":
        if database.startswith("file:"):
            raise ValueError("SQLite URI filenames (file:...) are not supported; give a path")
        parsed = parsed.set(database=str(_absolute(database, anchor, home)))
        return parsed.render_as_string(hide_password=False)
    return url


def _check(
    config: HostConfig, origins: Mapping[tuple[str, ...], str], defaulted: set[str]
) -> list[Problem]:
    """What a schema cannot see: lint of the grants and where the run store lives."""
    problems: list[Problem] = []
    for index, path in enumerate(config.plugin_paths):
        if is_inside(path, config.workspace):
            problems.append(
                Problem(
                    f"plugin_paths[{index}]",
                    f"{path} is inside the workspace {config.workspace}, where jobs may write;"
                    " the host and every plugin's runs import code from it. Install plugins"
                    " elsewhere (pip install --target /opt/plugbox/plugins ...) and list that",
                )
            )
    for index, key, message in check_webhooks(config.webhooks):
        problems.append(Problem(_location(("webhooks", index, key)), message))
    for plugin_id, plugin in config.plugins.items():
        if plugin.permissions is not None:
            where = _location(("plugins", plugin_id, "permissions"))
            problems += lint_permissions(plugin.permissions, where, grant=True)
    workspace = config.workspace
    reason = (
        f"is inside the workspace {workspace}; jobs can reach the workspace, so the run store"
        " must live outside it"
    )
    if is_inside(config.state_dir, workspace):
        hint = " (the default)" if "state_dir" in defaulted else ""
        problems.append(
            Problem(
                _where(("state_dir",), origins),
                f"{config.state_dir}{hint} {reason}; set state_dir to a directory elsewhere",
            )
        )
    if "database_url" in defaulted:
        return problems  # the default is in state_dir, checked above
    from sqlalchemy.engine import make_url

    database = make_url(config.database_url)
    if config.database_url.startswith("sqlite") and database.database not in (None, "", ":memory:"):
        path = Path(str(database.database))
        if is_inside(path, workspace) and not is_inside(config.state_dir, workspace):
            problems.append(Problem(_where(("database_url",), origins), f"{path} {reason}"))
    return problems


def _from_pydantic(error: ValidationError, origins: Mapping[tuple[str, ...], str]) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if not _is_internal(part))
        message = item["msg"].removeprefix("Value error, ")
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key" + _suggestion(loc)
        elif kind == "missing":
            message = "required but missing"
        elif _shows_input(kind, item["input"]):
            message += f", got {item['input']!r}"
        problems.append(Problem(_where(loc, origins), message))
    return problems


def _shows_input(kind: str, value: object) -> bool:
    # "Input should be a valid integer" helps more with the value beside it; tables and lists
    # are left out, since they can be long and the key already says where they are.
    wrong_type = kind.endswith(("_type", "_parsing")) or kind == "literal_error"
    return wrong_type and not isinstance(value, dict | list)


def _is_internal(part: str | int) -> bool:
    return isinstance(part, str) and (part == "[key]" or part.startswith("function-"))


def _where(loc: tuple[str | int, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    for key, name in origins.items():
        if loc[: len(key)] == key:
            return f"option {name}" if name.startswith("-") else f"environment variable {name}"
    return _location(loc)


def _location(loc: tuple[str | int, ...]) -> str:
    """A TOML dotted key: ``plugins.example.permissions.fs[0].mode``, ``jobs."a:b".schedule``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
        text += f".{key}" if text else key
    return text


def _suggestion(loc: tuple[str | int, ...]) -> str:
    """`` (did you mean 'workers'?)`` for a misspelt key, else the keys that are allowed."""
    known = _keys_at(loc[:-1])
    if not known or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; known keys: " + ", ".join(sorted(known))


def _keys_at(path: tuple[str | int, ...]) -> list[str]:
    node: Any = HostConfig
    for part in path:
        node = _step(node, part)
    model = _model_in(node)
    if model is None:
        return []
    return [
        field.validation_alias if isinstance(field.validation_alias, str) else name
        for name, field in model.model_fields.items()
    ]


def _step(node: Any, part: str | int) -> Any:
    model = _model_in(node)
    if model is not None:
        for name, field in model.model_fields.items():
            if part in (name, field.validation_alias):
                return field.annotation
        return None
    args = get_args(node)
    if get_origin(node) in (dict, Mapping) and len(args) == 2:
        return args[1]
    if get_origin(node) is tuple and args:
        return args[0]
    return None


def _model_in(node: Any) -> type[BaseModel] | None:
    if isinstance(node, type) and issubclass(node, BaseModel):
        return node
    if get_origin(node) in (Union, types.UnionType):
        for arg in get_args(node):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None
