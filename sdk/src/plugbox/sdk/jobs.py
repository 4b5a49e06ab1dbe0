"""``@job`` and ``define_manifest``: how an author declares jobs.

``@job`` only records the author's options on the function (refusing a second decoration) and
returns the function unchanged, so it stays an ordinary callable for unit tests. Validation happens
once, in ``define_manifest``, so that one error lists every problem of every job with its location
instead of stopping at the first bad decorator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from plugbox.sdk.errors import ManifestError, Problem
from plugbox.sdk.manifest import (
    DEFAULT_SDK_RANGE,
    Concurrency,
    Manifest,
    Misfire,
    validate_manifest,
)
from plugbox.sdk.permissions.models import Permissions

F = TypeVar("F", bound=Callable[..., Any])
Duration = str | int | float | timedelta

_ATTRIBUTE = "__plugbox_job__"


@dataclass(frozen=True, slots=True)
class JobDeclaration:
    """What ``@job`` recorded: the id, the handler and the options as the author wrote them."""

    id: str
    handler: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """``module:qualname`` — how a sandboxed child imports the handler."""
        return f"{self.handler.__module__}:{self.handler.__qualname__}"

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


def job(
    id: str,
    *,
    schedule: str | None = None,
    description: str | None = None,
    timezone: str = "UTC",
    timeout: Duration | None = None,
    retries: int = 0,
    retry_delay: Duration = "1s",
    retry_max_delay: Duration = "5m",
    priority: int = 5,
    tags: Iterable[str] = (),
    concurrency: Concurrency = "forbid",
    misfire: Misfire = "run_once",
    catch_up_limit: int = 10,
    jitter: Duration = 0,
    run_on_startup: bool = False,
    enabled: bool = True,
    permissions: Permissions | Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | type[BaseModel] | None = None,
    config_schema: Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> Callable[[F], F]:
    """Declare ``func`` as job ``id``. Options are validated by ``define_manifest``.

    ``description`` defaults to the first line of the function's docstring. ``config`` is the
    defaults the operator may override in plugbox.toml, or a pydantic model class: its fields'
    defaults become the defaults and its JSON Schema the shape operator values must have
    (``config_schema`` gives a JSON Schema directly). ``secrets`` names what
    ``ctx.secrets.get`` may read.
    """
    defaults, schema = _config_declaration(config, config_schema)
    if not isinstance(id, str):
        raise TypeError(f"@job needs the job id as text first, e.g. @job('hello-cron'), got {id!r}")

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@job({id!r}) must decorate a function, not {func!r}")
        existing = getattr(func, _ATTRIBUTE, None)
        if existing is not None:
            raise ValueError(
                f"{func.__qualname__} is already job {existing.id!r}; a function can be one job "
                "only (wrap it in a second function for a second schedule)"
            )
        doc = (inspect.getdoc(func) or "").strip().splitlines()
        options: dict[str, Any] = {
            "schedule": schedule,
            "description": description if description is not None else (doc[0] if doc else ""),
            "timezone": timezone,
            "timeout_ms": timeout,
            "retries": retries,
            "retry_delay_ms": retry_delay,
            "retry_max_delay_ms": retry_max_delay,
            "priority": priority,
            "tags": tuple(tags),
            "concurrency": concurrency,
            "misfire": misfire,
            "catch_up_limit": catch_up_limit,
            "jitter_ms": jitter,
            "run_on_startup": run_on_startup,
            "enabled": enabled,
            "permissions": permissions if permissions is not None else Permissions(),
            "config": defaults,
            "config_schema": schema,
            "secrets": tuple(secrets),
        }
        setattr(func, _ATTRIBUTE, JobDeclaration(id, func, options))
        return func

    return decorate


def _config_declaration(
    config: Mapping[str, Any] | type[BaseModel] | None, schema: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The defaults and JSON Schema of a job's config, from a mapping or a pydantic model."""
    if isinstance(config, type) and issubclass(config, BaseModel):
        if schema is not None:
            raise TypeError("give config= a pydantic model or config_schema=, not both")
        defaults = {
            name: to_jsonable_python(info.get_default(call_default_factory=True))
            for name, info in config.model_fields.items()
            if not info.is_required()
        }
        return defaults, config.model_json_schema()
    return dict(config or {}), None if schema is None else dict(schema)


def get_job(func: Callable[..., Any]) -> JobDeclaration:
    """The declaration ``@job`` attached to ``func``; :class:`LookupError` if it has none."""
    declaration = getattr(func, _ATTRIBUTE, None)
    if not isinstance(declaration, JobDeclaration):
        name = getattr(func, "__qualname__", repr(func))
        raise LookupError(f"{name} is not a job; decorate it with @job('some-id', schedule=...)")
    return declaration


def define_manifest(
    *,
    id: str,
    version: str,
    name: str,
    jobs: Sequence[Callable[..., Any] | JobDeclaration] = (),
    description: str = "",
    sdk: str = DEFAULT_SDK_RANGE,
    permissions: Permissions | Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> Manifest:
    """Build and validate a plugin manifest; raise ManifestError listing every problem.

    ``secrets`` names what every job's ``ctx.secrets.get`` may read (a job adds its own).
    """
    declarations: list[JobDeclaration] = []
    problems: list[Problem] = []
    for index, item in enumerate(jobs):
        if isinstance(item, JobDeclaration):
            declarations.append(item)
            continue
        try:
            declarations.append(get_job(item))
        except LookupError as err:
            problems.append(Problem(f"jobs[{index}]", str(err)))
    if problems:
        raise ManifestError(problems, f"plugin {id!r}")
    data = {
        "id": id,
        "version": version,
        "name": name,
        "description": description,
        "sdk": sdk,
        "permissions": permissions if permissions is not None else Permissions(),
        "secrets": tuple(secrets),
        "jobs": [{"id": d.id, "handler": d.reference, **d.options} for d in declarations],
    }
    return validate_manifest(data, f"plugin {id!r}")
