"""``combine``: the one way permission sets are merged.

Union of allows and of denies, later quotas override earlier ones field by field, and each fs rule
set keeps its own mode: merging a read-only set with a read-write one must never make the read-only
paths writable, so fs rule sets are concatenated rather than flattened into one list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from plugbox.sdk.permissions.models import (
    EnvPermissions,
    NetPermissions,
    Permissions,
    Quotas,
    ShellPermissions,
)

_T = TypeVar("_T")


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))


def as_permissions(value: Permissions | Mapping[str, Any] | None) -> Permissions:
    """Accept a model, a plain mapping (as in a JSON manifest) or ``None`` (nothing)."""
    if value is None:
        return Permissions()
    if isinstance(value, Permissions):
        return value
    return Permissions.model_validate(value)


def combine(*parts: Permissions | Mapping[str, Any] | None) -> Permissions:
    """Merge permission sets: union of every allow and deny, later quotas win per field."""
    sets = [as_permissions(part) for part in parts]
    quotas: dict[str, Any] = {}
    for item in sets:
        quotas.update(item.quotas.model_dump(exclude_none=True))
    return Permissions(
        fs=_unique(rule for item in sets for rule in item.fs),
        net=NetPermissions(
            allow_hosts=_unique(h for item in sets for h in item.net.allow_hosts),
            deny_hosts=_unique(h for item in sets for h in item.net.deny_hosts),
            allow_hosts_from=_unique(k for item in sets for k in item.net.allow_hosts_from),
        ),
        env=EnvPermissions(allow=_unique(n for item in sets for n in item.env.allow)),
        shell=ShellPermissions(
            allow=_unique(c for item in sets for c in item.shell.allow),
            deny=_unique(c for item in sets for c in item.shell.deny),
        ),
        capabilities=_unique(c for item in sets for c in item.capabilities),
        quotas=Quotas(**quotas),
    )
