"""The one allow/deny decision every enforcement point calls.

``decide(operation, target, permissions)`` is pure: no I/O, no clock, no environment. The runtime
proxies, the network broker, the test harness and ``plugbox plugins inspect`` all call it, so a
verdict means the same thing everywhere. Order of reasoning, identical for every kind of target:

1. a malformed target (``..``, NUL, a decimal IP, a command with a path) is denied, naming why;
2. a matching deny rule denies — deny always beats allow;
3. a matching allow rule of sufficient access allows;
4. anything else is denied by default.

A :class:`Policy` is the compiled form of one :class:`Permissions`; :func:`compile_policy` caches
them because models are frozen and hashable. An operator's narrowing is expressed as extra layers
(:class:`LayeredPolicy`): a call is allowed only when every layer allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, NamedTuple, Protocol

from plugbox.sdk.errors import PermissionDenied, TargetError
from plugbox.sdk.permissions.commands import CommandList, split_command
from plugbox.sdk.permissions.globs import GlobList
from plugbox.sdk.permissions.hosts import (
    HostList,
    normalize_host,
    special_address_reason,
    split_host_port,
)
from plugbox.sdk.permissions.models import FsPermissions, Permissions
from plugbox.sdk.permissions.paths import normalize_path

Operation = Literal["fs.read", "fs.write", "net.connect", "env.read", "shell.run"]
OPERATIONS: tuple[Operation, ...] = ("fs.read", "fs.write", "net.connect", "env.read", "shell.run")

DEFAULT_DENY = "default deny"
_ROOT_READ_PATTERNS = frozenset({"*", "**", "/*", "/**"})


class Decision(NamedTuple):
    """A verdict and the rule that reached it, e.g. ``fs[0].allow[1] '.plugbox/x/**'``.

    A named tuple rather than a frozen dataclass: immutable all the same, and built four times
    faster, which matters on a path every fs call takes.
    """

    allowed: bool
    operation: str
    target: str
    rule: str
    reason: str = ""

    def raise_if_denied(self) -> None:
        """Raise :class:`PermissionDenied` naming operation, target and rule when denied."""
        if not self.allowed:
            raise PermissionDenied(self.operation, self.target, self.rule, self.reason)


class Decider(Protocol):
    """Anything that decides: one compiled :class:`Policy` or a :class:`LayeredPolicy`."""

    def decide(self, operation: Operation, target: str, *, is_dir: bool = False) -> Decision: ...

    def decide_resolved(self, target: str, address: str) -> Decision: ...


def _labels(section: str, rows: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    return [f"{where}.{section}[{i}] {p!r}" for where, pats in rows for i, p in enumerate(pats)]


def _contents_only(rules: Sequence[FsPermissions], *, write: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for rule in rules:
        if write and rule.mode != "readWrite":
            continue
        for pattern in rule.allow:
            folder = pattern.strip("/")
            if folder.endswith("/**") and len(folder) > 3:
                found.setdefault(folder[:-3], pattern)
    return found


class Policy:
    """One permission set compiled for fast repeated decisions."""

    __slots__ = (
        "_allow_hosts",
        "_commands_allow",
        "_commands_deny",
        "_contents_only_read",
        "_contents_only_write",
        "_deny",
        "_deny_hosts",
        "_deny_labels",
        "_env_names",
        "_env_prefixes",
        "_has_shell",
        "_read",
        "_read_labels",
        "_root_readable",
        "_write",
        "_write_labels",
        "permissions",
    )

    def __init__(self, permissions: Permissions) -> None:
        self.permissions = permissions
        fs = permissions.fs
        deny_rows = [(f"fs[{n}]", rule.deny) for n, rule in enumerate(fs)]
        read_rows = [(f"fs[{n}]", rule.allow) for n, rule in enumerate(fs)]
        write_rows = [
            (f"fs[{n}]", rule.allow) for n, rule in enumerate(fs) if rule.mode == "readWrite"
        ]
        self._deny = GlobList([p for _, pats in deny_rows for p in pats])
        self._deny_labels = _labels("deny", deny_rows)
        self._read = GlobList([p for _, pats in read_rows for p in pats])
        self._read_labels = _labels("allow", read_rows)
        self._write = GlobList([p for _, pats in write_rows for p in pats])
        self._write_labels = _labels("allow", write_rows)
        self._root_readable = any(p in _ROOT_READ_PATTERNS for _, pats in read_rows for p in pats)
        self._allow_hosts = HostList(permissions.net.allow_hosts)
        self._deny_hosts = HostList(permissions.net.deny_hosts)
        env = permissions.env.allow
        self._env_names = frozenset(n for n in env if not n.endswith("*"))
        self._env_prefixes = tuple(n[:-1] for n in env if n.endswith("*"))
        self._commands_allow = CommandList(permissions.shell.allow)
        self._commands_deny = CommandList(permissions.shell.deny)
        self._has_shell = "shell" in permissions.capabilities
        # Folders allowed only for their contents ("x/**"), for the hint a refusal of "x" gives.
        self._contents_only_read = _contents_only(fs, write=False)
        self._contents_only_write = _contents_only(fs, write=True)

    def decide(self, operation: Operation, target: str, *, is_dir: bool = False) -> Decision:
        """Decide one call. ``is_dir`` matters for directory-only patterns such as ``build/``."""
        if operation == "fs.read":
            # The hot path (every file read): inlined, because a call costs ~5% of the budget.
            try:
                path = normalize_path(target)
            except TargetError as err:
                return Decision(False, operation, str(target), "path check", err.reason)
            if not path:
                return self._decide_root(operation)
            hit = self._deny.match(path, is_dir=is_dir)
            if hit is not None:
                return Decision(False, operation, path, self._deny_labels[hit])
            hit = self._read.match(path, is_dir=is_dir)
            if hit is not None:
                return Decision(True, operation, path, self._read_labels[hit])
            reason = "no fs rule allows reading here"
            if self._contents_only_read:  # rarely any: keep the hot path free of the call
                reason += self._contents_only_hint(path, write=False)
            return Decision(False, operation, path, DEFAULT_DENY, reason)
        if operation == "fs.write":
            return self._decide_fs_write(target, is_dir)
        if operation == "net.connect":
            return self._decide_net(target)
        if operation == "env.read":
            return self._decide_env(target)
        if operation == "shell.run":
            return self._decide_shell(target)
        raise ValueError(
            f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}"
        )

    # -- fs ---------------------------------------------------------------------------------
    def _decide_fs_write(self, target: str, is_dir: bool) -> Decision:
        operation: Operation = "fs.write"
        try:
            path = normalize_path(target)
        except TargetError as err:
            return Decision(False, operation, str(target), "path check", err.reason)
        if not path:
            return self._decide_root(operation)
        hit = self._deny.match(path, is_dir=is_dir)
        if hit is not None:
            return Decision(False, operation, path, self._deny_labels[hit])
        hit = self._write.match(path, is_dir=is_dir)
        if hit is not None:
            return Decision(True, operation, path, self._write_labels[hit])
        hit = self._read.match(path, is_dir=is_dir)
        if hit is not None:
            return Decision(
                False, operation, path, self._read_labels[hit], "that rule set is read-only"
            )
        reason = "no fs rule allows writing here"
        if self._contents_only_write:
            reason += self._contents_only_hint(path, write=True)
        return Decision(False, operation, path, DEFAULT_DENY, reason)

    def _contents_only_hint(self, path: str, *, write: bool) -> str:
        """A refused ``x`` under an allow of ``x/**``: say why, since ``mkdir``/``listdir`` of
        the folder itself is what a job does first.

        The rule suggested stays anchored where the refused one was: ``docs/`` alone would match
        a ``docs`` folder at any depth (and, ``readWrite``, is refused by the lint for making
        the workspace root a kernel write root), so a top-level folder is suggested as ``/docs/``.
        """
        pattern = (self._contents_only_write if write else self._contents_only_read).get(path)
        if pattern is None:
            return ""
        suggested = f"{path}/" if "/" in path else f"/{path}/"
        return (
            f"; {pattern!r} matches what is inside {path}, not {path} itself:"
            f" allow '{suggested}' instead (the folder and everything in it)"
        )

    def _decide_root(self, operation: Operation) -> Decision:
        if operation == "fs.read" and self._root_readable:
            return Decision(True, operation, ".", "fs allow of the whole workspace")
        reason = (
            "the workspace root itself cannot be written"
            if operation == "fs.write"
            else "listing the workspace root needs an allow of '*' or '**'"
        )
        return Decision(False, operation, ".", DEFAULT_DENY, reason)

    # -- net --------------------------------------------------------------------------------
    def _decide_net(self, target: str) -> Decision:
        try:
            raw_host, port = split_host_port(target)
            host = normalize_host(raw_host)
        except TargetError as err:
            return Decision(False, "net.connect", str(target), "host check", err.reason)
        shown = host if port is None else f"{host}:{port}"
        hit = self._deny_hosts.match(host, port)
        if hit is not None:
            label = f"net.deny_hosts[{hit}] {self.permissions.net.deny_hosts[hit]!r}"
            return Decision(False, "net.connect", shown, label)
        hit = self._allow_hosts.match(host, port)
        if hit is not None:
            label = f"net.allow_hosts[{hit}] {self.permissions.net.allow_hosts[hit]!r}"
            return Decision(True, "net.connect", shown, label)
        return Decision(False, "net.connect", shown, DEFAULT_DENY, "no allow_hosts pattern matches")

    def decide_resolved(self, target: str, address: str) -> Decision:
        """Decide a connection to ``target`` after the broker resolved it to ``address``.

        The name must be allowed, and when the address is special (loopback, private, link-local
        such as the metadata service) the address itself must be allowed explicitly: a wildcard
        name that resolves to 127.0.0.1 does not open the host's own services.
        """
        by_name = self._decide_net(target)
        if not by_name.allowed:
            return by_name
        _, port = split_host_port(target)
        ip = normalize_host(address)
        hit = self._deny_hosts.match(ip, port)
        if hit is not None:
            label = f"net.deny_hosts[{hit}] {self.permissions.net.deny_hosts[hit]!r}"
            return Decision(False, "net.connect", f"{by_name.target} -> {ip}", label)
        special = special_address_reason(ip)
        if special is None or self._allow_hosts.match(ip, port) is not None:
            return Decision(True, "net.connect", f"{by_name.target} -> {ip}", by_name.rule)
        return Decision(
            False,
            "net.connect",
            f"{by_name.target} -> {ip}",
            "address check",
            f"resolves to a {special} address; allow that address explicitly if intended",
        )

    # -- env --------------------------------------------------------------------------------
    def _decide_env(self, name: str) -> Decision:
        if name in self._env_names:
            return Decision(True, "env.read", name, f"env.allow {name!r}")
        for prefix in self._env_prefixes:
            if name.startswith(prefix):
                return Decision(True, "env.read", name, f"env.allow {prefix + '*'!r}")
        return Decision(False, "env.read", name, DEFAULT_DENY, "not in env.allow")

    # -- shell ------------------------------------------------------------------------------
    def _decide_shell(self, command: str | Sequence[str]) -> Decision:
        shown = command if isinstance(command, str) else " ".join(command)
        if not self._has_shell:
            return Decision(
                False, "shell.run", shown, "capabilities", "the job lacks the 'shell' capability"
            )
        try:
            argv = split_command(command)
        except TargetError as err:
            return Decision(False, "shell.run", shown, "command check", err.reason)
        hit = self._commands_deny.match(argv)
        if hit is not None:
            label = f"shell.deny[{hit}] {self.permissions.shell.deny[hit]!r}"
            return Decision(False, "shell.run", shown, label)
        hit = self._commands_allow.match(argv)
        if hit is not None:
            label = f"shell.allow[{hit}] {self.permissions.shell.allow[hit]!r}"
            return Decision(True, "shell.run", shown, label)
        return Decision(False, "shell.run", shown, DEFAULT_DENY, "no shell.allow pattern matches")


class LayeredPolicy:
    """Declared permissions narrowed by operator grants: allowed only if every layer allows."""

    __slots__ = ("layers",)

    def __init__(self, layers: Sequence[tuple[str, Policy]]) -> None:
        if not layers:
            raise ValueError("a layered policy needs at least the declared layer")
        self.layers = tuple(layers)

    def decide(self, operation: Operation, target: str, *, is_dir: bool = False) -> Decision:
        first: Decision | None = None
        for name, policy in self.layers:
            verdict = policy.decide(operation, target, is_dir=is_dir)
            if not verdict.allowed:
                return Decision(
                    False, operation, verdict.target, f"{name} {verdict.rule}", verdict.reason
                )
            first = first or verdict
        assert first is not None
        return first

    def decide_resolved(self, target: str, address: str) -> Decision:
        first: Decision | None = None
        for name, policy in self.layers:
            verdict = policy.decide_resolved(target, address)
            if not verdict.allowed:
                rule = f"{name} {verdict.rule}"
                return Decision(False, verdict.operation, verdict.target, rule, verdict.reason)
            first = first or verdict
        assert first is not None
        return first


@lru_cache(maxsize=512)
def compile_policy(permissions: Permissions) -> Policy:
    """The compiled :class:`Policy` of a permission set (cached: models are frozen)."""
    return Policy(permissions)


def effective_policy(declared: Permissions, *granted: Permissions) -> Decider:
    """Effective = declared ∩ every operator grant, as one decider."""
    if not granted:
        return compile_policy(declared)
    layers = [("declared", compile_policy(declared))]
    layers += [(f"operator grant[{n}]", compile_policy(g)) for n, g in enumerate(granted)]
    return LayeredPolicy(layers)


def decide(
    operation: Operation, target: str, permissions: Permissions, *, is_dir: bool = False
) -> Decision:
    """Decide whether ``operation`` on ``target`` is allowed by ``permissions``.

    ``target`` is a workspace-relative path (fs), ``host`` or ``host:port`` (net), a variable
    name (env) or a command line (shell).
    """
    return compile_policy(permissions).decide(operation, target, is_dir=is_dir)
