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

import difflib
import json
import os
import re
import socket
import tomllib
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from plugbox.host.config.models import HostConfig
from plugbox.host.config.sources import (
    absolute,
    anchor,
    find_config,
    with_env,
)
from plugbox.host.config.state import is_inside, source_problems
from plugbox.host.config.webhooks import check_webhooks
from plugbox.host.config.workspace_mark import mark_workspace
from plugbox.sdk import PlugboxError, Problem
from plugbox.sdk.permissions import lint_permissions

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
    data, origins = with_env(raw, env)
    if database_url is not None:
        data["database_url"], origins[("database_url",)] = database_url, "--db"
    defaulted = {key for key in ("state_dir", "database_url") if key not in data}
    data.setdefault("workers", os.cpu_count() or 1)
    data.setdefault("host_id", socket.gethostname() or "localhost")
    problems = [
        Problem(_where(key, origins), message)
        for key, message in anchor(data, origins, base, cwd, env, _anchor_url)
    ]
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
        problems = [Problem("", message) for message in source_problems(source, config.workspace)]
        if problems:
            raise ConfigError(problems, source)
    mark_workspace(config.workspace)
    config._source = source
    return config


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
        parsed = parsed.set(database=str(absolute(database, anchor, home)))
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
