"""The permission models a plugin declares and an operator grants.

Default deny: an empty :class:`Permissions` allows nothing. Every pattern is checked when the model
is built (a pattern we cannot evaluate exactly is refused, never guessed at), so a constructed model
is always safe to hand to the decision function. Models are frozen: a permission set that could
change after it was reviewed would make ``plugbox plugins inspect`` a lie.

A permission set is also bounded in size (the ``MAX_*`` constants below). The shared zygote
validates and compiles a job's whole set before it forks that job's first run, and the work grows
with the text (about 10 µs per character of glob on the development machine), so an unbounded
set lets one plugin stall every other plugin's runs: 1,000 globs of 1 KB kept it busy for 11 s.
The bounds sit far above what an honest plugin declares, and apply wherever a set is built: in
a manifest, in ``combine`` (so plugin- and job-level sets together), and in an operator's grant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugbox.sdk.permissions.commands import parse_command_pattern
from plugbox.sdk.permissions.globs import check_glob
from plugbox.sdk.permissions.hosts import parse_host_pattern

FsMode = Literal["read", "readWrite"]

#: Capabilities a job can ask for beyond its rule lists. ``shell`` unlocks ``runtime.shell``.
KNOWN_CAPABILITIES: Mapping[str, str] = {
    "shell": "run allowed commands through runtime.shell (argv only, never a shell)",
}

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")
#: A config key a rule may be bound to (a bare TOML key, so the operator can write it plainly).
CONFIG_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_CONFIG_KEY = re.compile(CONFIG_KEY_PATTERN)

#: fs patterns (allow and deny, over every rule set) in one permission set.
MAX_FS_PATTERNS = 256
#: fs rule sets in one permission set.
MAX_FS_RULE_SETS = 64
#: Characters of all fs patterns of one set together (each is also at most 1024 bytes).
MAX_FS_PATTERN_CHARS = 16 * 1024
#: Entries in each of ``net.allow_hosts``, ``net.deny_hosts``, ``env.allow``, ``shell.allow``
#: and ``shell.deny``.
MAX_LIST_ENTRIES = 256
#: Characters of one shell command pattern.
MAX_COMMAND_CHARS = 1024
#: Characters of all shell patterns of one set together.
MAX_SHELL_PATTERN_CHARS = 16 * 1024
#: Characters of one environment variable name.
MAX_ENV_NAME_CHARS = 256
#: Entries in ``capabilities``.
MAX_CAPABILITIES = 16

_SIZE_WHY = "a permission set is bounded so that preparing one job's runs cannot stall others"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _each(values: Sequence[str], check: Any) -> tuple[str, ...]:
    for value in values:
        check(value)
    return tuple(values)


def _bounded(values: object, limit: int, what: str, item_chars: int | None = None) -> object:
    """Refuse a list longer than ``limit`` (or an entry longer than ``item_chars``) before any
    entry is parsed: parsing is the work the bound is there to cap."""
    if not isinstance(values, list | tuple):
        return values  # the schema reports the wrong type
    if len(values) > limit:
        raise ValueError(f"{len(values)} {what}; at most {limit} are allowed ({_SIZE_WHY})")
    if item_chars is not None:
        for index, value in enumerate(values):
            if isinstance(value, str) and len(value) > item_chars:
                raise ValueError(
                    f"[{index}] is {len(value)} characters long; at most {item_chars} are"
                    f" allowed ({_SIZE_WHY})"
                )
    return values


def _total_chars(values: Sequence[str], limit: int, what: str) -> None:
    total = sum(len(value) for value in values)
    if total > limit:
        raise ValueError(
            f"{what} hold {total} characters together; at most {limit} are allowed ({_SIZE_WHY})"
        )


class FsPermissions(_Frozen):
    """One filesystem rule set: gitignore-style globs relative to the workspace root.

    ``mode`` applies to this rule set's ``allow`` list only; combining sets never lends one set's
    write access to another's paths. A ``deny`` pattern applies to every access, from any set.
    """

    mode: FsMode = Field("read", description="read, or readWrite (read + create/modify/remove)")
    allow: tuple[str, ...] = Field((), description="gitignore-style globs this set grants")
    deny: tuple[str, ...] = Field(
        (), description="globs refused for every access (deny beats allow)"
    )
    allow_from: tuple[str, ...] = Field(
        (),
        description="config keys whose operator-set value (a workspace path) this set grants,"
        " the path and everything below it; resolved by the host, see docs/permissions.md",
    )

    @field_validator("allow_from", mode="before")
    @classmethod
    def _few_keys(cls, keys: object) -> object:
        return _bounded(keys, MAX_LIST_ENTRIES, "config keys")

    @field_validator("allow_from")
    @classmethod
    def _keys_are_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        return _each(keys, check_config_key)

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _not_too_many(cls, patterns: object) -> object:
        # Each glob's own length (1024 bytes) is checked by check_glob, cheaply, first thing.
        return _bounded(patterns, MAX_FS_PATTERNS, "patterns")

    @field_validator("allow", "deny")
    @classmethod
    def _globs_are_exact(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        return _each(patterns, check_glob)


def check_config_key(key: str) -> None:
    """Refuse a binding's config key that is not a plain key (``api_url``, ``data-dir``)."""
    if not _CONFIG_KEY.fullmatch(key):
        raise ValueError(
            f"{key!r} is not a config key (a letter or '_', then letters, digits, '_' or '-';"
            " at most 64 characters)"
        )


def _raw_patterns(rule: object) -> list[str]:
    """The allow and deny patterns of one not yet validated fs rule set (the strings in it)."""
    if isinstance(rule, FsPermissions):
        return [*rule.allow, *rule.deny]
    if not isinstance(rule, Mapping):
        return []  # the schema reports the wrong type
    found: list[str] = []
    for key in ("allow", "deny"):
        values = rule.get(key, ())
        if isinstance(values, list | tuple):
            found += [value for value in values if isinstance(value, str)]
    return found


def _fs_size(patterns: Sequence[str], rule_sets: int) -> None:
    if len(patterns) > MAX_FS_PATTERNS:
        raise ValueError(
            f"{len(patterns)} fs patterns (allow and deny, over {rule_sets} rule"
            f" set{'s' if rule_sets != 1 else ''}); at most {MAX_FS_PATTERNS} are allowed"
            f" ({_SIZE_WHY})"
        )
    _total_chars(patterns, MAX_FS_PATTERN_CHARS, "the fs patterns")


class NetPermissions(_Frozen):
    """Hosts a job may reach through ``runtime.net``: ``api.x.com``, ``*.x.com``, ``host:port``, IPs."""

    allow_hosts: tuple[str, ...] = Field(
        (), description="host patterns; '*.domain' = any subdomain"
    )
    deny_hosts: tuple[str, ...] = Field((), description="host patterns refused even when allowed")
    allow_hosts_from: tuple[str, ...] = Field(
        (),
        description="config keys whose operator-set value (a URL or host[:port]) is allowed;"
        " resolved by the host, see docs/permissions.md",
    )

    @field_validator("allow_hosts_from", mode="before")
    @classmethod
    def _few_keys(cls, keys: object) -> object:
        return _bounded(keys, MAX_LIST_ENTRIES, "config keys")

    @field_validator("allow_hosts_from")
    @classmethod
    def _keys_are_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        return _each(keys, check_config_key)

    @field_validator("allow_hosts", "deny_hosts", mode="before")
    @classmethod
    def _not_too_many(cls, patterns: object) -> object:
        # A host pattern's own length is bounded by parse_host_pattern before any parsing.
        return _bounded(patterns, MAX_LIST_ENTRIES, "host patterns")

    @field_validator("allow_hosts", "deny_hosts")
    @classmethod
    def _hosts_parse(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        return _each(patterns, parse_host_pattern)


class EnvPermissions(_Frozen):
    """Environment variable names visible to a job; ``PREFIX_*`` allows a family of names."""

    allow: tuple[str, ...] = Field((), description="exact names, or a prefix ending in '*'")

    @field_validator("allow", mode="before")
    @classmethod
    def _not_too_many(cls, names: object) -> object:
        return _bounded(names, MAX_LIST_ENTRIES, "names", MAX_ENV_NAME_CHARS)

    @field_validator("allow")
    @classmethod
    def _names_are_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name "
                    "(letters, digits, '_'; may end in '*' to allow a prefix)"
                )
        return names


class ShellPermissions(_Frozen):
    """Command patterns over the split argument list; needs the ``shell`` capability."""

    allow: tuple[str, ...] = Field((), description="e.g. 'git status', 'git log **'")
    deny: tuple[str, ...] = Field((), description="patterns refused even when allowed")

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _not_too_many(cls, patterns: object) -> object:
        return _bounded(patterns, MAX_LIST_ENTRIES, "command patterns", MAX_COMMAND_CHARS)

    @field_validator("allow", "deny")
    @classmethod
    def _commands_parse(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        _total_chars(patterns, MAX_SHELL_PATTERN_CHARS, "the command patterns")
        return _each(patterns, parse_command_pattern)


PositiveInt = Annotated[int, Field(gt=0)]


class Quotas(_Frozen):
    """Resource ceilings for one run. ``None`` leaves the host's default in force."""

    timeout_ms: PositiveInt | None = Field(
        None, description="wall-clock time before the run is killed (status timeout)"
    )
    memory_mb: PositiveInt | None = Field(
        None, description="memory of the whole process tree; more kills the run"
    )
    cpu_ms: PositiveInt | None = Field(
        None, description="CPU time of the whole process tree; more kills the run"
    )
    output_bytes: PositiveInt | None = Field(
        None, description="stdout+stderr kept; the rest is dropped, 4 times this kills the run"
    )
    open_files: PositiveInt | None = Field(
        None, description="file descriptors each process may hold open"
    )
    processes: PositiveInt | None = Field(
        None, description="processes and threads of the run at once"
    )
    file_size_mb: PositiveInt | None = Field(None, description="largest file a process may write")

    def overridden_by(self, other: Quotas) -> Quotas:
        """These quotas with every field ``other`` sets replaced (an operator's override)."""
        return self.model_copy(update=other.model_dump(exclude_none=True))


class Permissions(_Frozen):
    """Everything a job may do. Empty means nothing: plugbox is default deny."""

    fs: tuple[FsPermissions, ...] = Field((), description="filesystem rule sets (one or a list)")
    net: NetPermissions = Field(NetPermissions(), description="hosts runtime.net may reach")
    env: EnvPermissions = Field(EnvPermissions(), description="variables runtime.env can see")
    shell: ShellPermissions = Field(
        ShellPermissions(), description="commands runtime.shell may run; needs 'shell'"
    )
    capabilities: tuple[str, ...] = Field(
        (), description=f"any of: {', '.join(KNOWN_CAPABILITIES)}"
    )
    quotas: Quotas = Field(Quotas(), description="resource ceilings of each run")

    @field_validator("fs", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, FsPermissions | Mapping):
            value = (value,)
        value = _bounded(value, MAX_FS_RULE_SETS, "fs rule sets")
        if isinstance(value, list | tuple):
            # The bound on the whole set (what `combine` and the zygote see), counted before
            # any glob is parsed: 64 rule sets of 256 long globs would take a minute to check.
            _fs_size([p for rule in value for p in _raw_patterns(rule)], len(value))
        return value

    @field_validator("capabilities", mode="before")
    @classmethod
    def _few_capabilities(cls, values: object) -> object:
        return _bounded(values, MAX_CAPABILITIES, "capabilities", 64)

    @field_validator("capabilities")
    @classmethod
    def _sorted_unique(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(values)))

    @property
    def is_empty(self) -> bool:
        """True when this set grants nothing at all (quotas aside)."""
        return not (
            any(rule.allow or rule.allow_from for rule in self.fs)
            or self.net.allow_hosts
            or self.net.allow_hosts_from
            or self.env.allow
            or self.shell.allow
            or self.capabilities
        )
