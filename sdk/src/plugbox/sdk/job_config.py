"""A job's effective config: declared defaults, overridden by what the operator set, checked.

The operator sets values in ``plugbox.toml`` (``[plugins.ID.config]`` for every job of a plugin,
``[jobs."PLUGIN:JOB".config]`` for one job; the job's table wins); a test sets them through the
harness's ``config=``. Both end here, so a value the host refuses is refused in a test too.

Checked: once a job declares config (defaults, or a ``config_schema``), every key the operator
sets must be one it declares — a misspelt key is an error, never a silent no-op — and, when the
job has a schema, the effective config must satisfy it. A job that declares no config at all
reads ``ctx.config`` free-form and accepts any key. JSON Schema is checked with ``jsonschema``, which
the host and the ``testing`` extra install; the light SDK alone never needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plugbox.sdk.errors import Problem
from plugbox.sdk.manifest import JobSpec, declared_config_keys


def effective_config(spec: JobSpec, operator: Mapping[str, Any]) -> dict[str, Any]:
    """The config the job sees: its defaults with every operator value laid over them."""
    return {**spec.config, **operator}


def config_problems(
    spec: JobSpec, operator: Mapping[str, Any], where: Callable[[str], str]
) -> list[Problem]:
    """What is wrong with ``operator``'s values for ``spec``; ``where(key)`` locates a key.

    ``where("")`` locates the config as a whole (a schema's ``required`` refers to it).
    """
    known = declared_config_keys(spec)
    problems = [
        Problem(where(key), _unknown(key, known)) for key in operator if not accepts(spec, key)
    ]
    if spec.config_schema is None or problems:
        return problems
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    validator = Draft202012Validator(spec.config_schema)
    config = effective_config(spec, operator)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        path = list(error.absolute_path)
        key = str(path[0]) if path else ""
        rest = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path[1:])
        origin = "" if not key or key in operator else " (the declared default)"
        problems.append(Problem(where(key) + rest, error.message + origin))
    return problems


def accepts(spec: JobSpec, key: str) -> bool:
    """Whether the operator may set ``key`` for ``spec``: a declared key, or any key for a job
    that declares no config at all."""
    known = declared_config_keys(spec)
    return not known or key in known


def _unknown(key: str, known: frozenset[str]) -> str:
    names = ", ".join(sorted(known)) or "none"
    return f"the job declares no config key {key!r}; its keys: {names}"
