"""Permission rules bound to operator config: ``allow_hosts_from`` and ``allow_from``.

A plugin that talks to "whatever API this deployment uses" cannot name the host in its wheel.
Instead a rule names a config key — ``net.allow_hosts_from = ["api_url"]`` — and the host turns it
into an ordinary literal rule from the value the **operator** set in ``plugbox.toml`` (or a test
set through the harness) before the run exists. Resolution is pure and happens once per run, so
everything downstream — the decision function, the kernel plan, grants — sees only literal rules
and keeps its meaning.

What may widen a job: only an operator's explicit value. A declared ``config`` default is never
used for a binding (an author could otherwise ship ``api_url = "evil.example"`` as a default and
call it operator choice), and a binding without an operator value leaves the job unrunnable, with
the key to set named. Grants (``declared ∩ granted``) still apply to resolved rules, and deny
rules still beat them. See docs/adr/0025-operator-config-secrets-bindings.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from plugbox.sdk.errors import PatternError, TargetError
from plugbox.sdk.permissions.hosts import parse_host_pattern
from plugbox.sdk.permissions.models import FsPermissions, NetPermissions, Permissions
from plugbox.sdk.permissions.paths import normalize_path

_DEFAULT_PORTS = {"http": 80, "https": 443}
_GLOB_SPECIAL = frozenset("*?[]\\!#")


@dataclass(frozen=True, slots=True)
class Binding:
    """One rule bound to a config key: where it is declared (``net.allow_hosts_from``), the key."""

    rule: str
    key: str

    @property
    def label(self) -> str:
        """``net.allow_hosts <- config.api_url``: how inspect and run records name it."""
        return f"{self.rule.removesuffix('_from')} <- config.{self.key}"


@dataclass(frozen=True, slots=True)
class Resolved:
    """A permission set with every binding made literal, and what could not be.

    ``values`` maps each binding's label to the literal rule it became (shown in every run
    record); ``missing`` holds the keys without an operator value; ``invalid`` the keys whose
    value cannot be a rule, with why.
    """

    permissions: Permissions
    values: Mapping[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    invalid: Mapping[str, str] = field(default_factory=dict)


def bindings_of(permissions: Permissions) -> tuple[Binding, ...]:
    """Every binding in ``permissions``, in declaration order (net first, then fs rule sets)."""
    found = [Binding("net.allow_hosts_from", key) for key in permissions.net.allow_hosts_from]
    for index, rule in enumerate(permissions.fs):
        found += [Binding(f"fs[{index}].allow_from", key) for key in rule.allow_from]
    return tuple(found)


def host_rule(value: object) -> str:
    """The ``allow_hosts`` entry for a config value: a URL's host and port, or ``host[:port]``.

    A URL without a port gets its scheme's (``https://api.x.com/v1`` → ``api.x.com:443``), so a
    binding never opens more ports than the operator's URL uses. ValueError says why not.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a URL or host[:port]")
    text = value.strip()
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"{text!r}: only http:// and https:// URLs can be bound")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError(f"{text!r} has a port that is not a number") from None
        host = parts.hostname or ""
        if not host:
            raise ValueError(f"{text!r} names no host")
        text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if "*" in text:
        raise ValueError(f"{text!r}: a bound value names one host; wildcards are for literal rules")
    try:
        parse_host_pattern(text)
    except PatternError as err:
        raise ValueError(str(err)) from None
    return text


def path_rule(value: object) -> str:
    """The anchored ``allow`` glob for a config value naming a workspace folder (and all below it).

    Glob characters in the value are escaped: the operator names one path, never a pattern.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a workspace path")
    try:
        path = normalize_path(value)
    except TargetError as err:
        raise ValueError(str(err)) from None
    if not path:
        raise ValueError("names the workspace root; bind a folder inside it")
    escaped = "".join(f"\\{char}" if char in _GLOB_SPECIAL else char for char in path)
    # A leading '/' anchors the pattern at the workspace root (gitignore); the trailing '/'
    # makes it the folder and everything below it, and tells the kernel plan to grant that folder
    # (never its parent: a bound top-level folder must not make the workspace root writable).
    return f"/{escaped}/"


def resolve_bindings(permissions: Permissions, operator: Mapping[str, object]) -> Resolved:
    """``permissions`` with each binding replaced by the literal rule from ``operator[key]``.

    ``operator`` holds only values the operator (or a test, through the harness) set — never the
    declared defaults. A set without bindings is returned as it is.
    """
    bindings = bindings_of(permissions)
    if not bindings:
        return Resolved(permissions)
    values: dict[str, str] = {}
    missing: list[str] = []
    invalid: dict[str, str] = {}

    def literal(binding: Binding, convert: Callable[[object], str]) -> str | None:
        if binding.key not in operator:
            if binding.key not in missing:
                missing.append(binding.key)
            return None
        try:
            rule = convert(operator[binding.key])
        except ValueError as err:
            invalid[binding.key] = str(err)
            return None
        values[binding.label] = rule
        return rule

    hosts = [
        rule
        for key in permissions.net.allow_hosts_from
        if (rule := literal(Binding("net.allow_hosts_from", key), host_rule)) is not None
    ]
    fs = []
    for index, rule_set in enumerate(permissions.fs):
        paths = [
            rule
            for key in rule_set.allow_from
            if (rule := literal(Binding(f"fs[{index}].allow_from", key), path_rule)) is not None
        ]
        fs.append(
            FsPermissions(
                mode=rule_set.mode,
                allow=tuple(dict.fromkeys((*rule_set.allow, *paths))),
                deny=rule_set.deny,
            )
        )
    net = NetPermissions(
        allow_hosts=tuple(dict.fromkeys((*permissions.net.allow_hosts, *hosts))),
        deny_hosts=permissions.net.deny_hosts,
    )
    resolved = permissions.model_copy(update={"net": net, "fs": tuple(fs)})
    return Resolved(resolved, values, tuple(missing), invalid)
