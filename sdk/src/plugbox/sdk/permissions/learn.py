"""Learn mode's policy side: from what a job really did to the smallest permission set allowing it.

A learn run (see ``plugbox.sdk.testing.learn``) lets every well-formed runtime call through and
records how the *declared* permissions would have decided each one. This module turns that record
into three answers, all pure:

* :func:`minimal_permissions` — the smallest rule set that allows every recorded call: exact
  anchored paths (``/data/out.txt``), exact ``host:port`` pairs, exact variable names, the exact
  commands. Directories the job created or listed become directory patterns (``/data/``), which in
  gitignore semantics also cover what is inside them — there is no pattern for "this directory
  but not its contents".
* :func:`unused_rules` — declared allow rules (and the ``shell`` capability) no recorded call
  needed: each is a permission the job could give up.
* :func:`missing_calls` — recorded calls the declared set refuses, with the refusing rule.

Every proposal is checked with the real decision function before it is returned, so the set it
proposes is known to allow what was recorded.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from plugbox.sdk.permissions.commands import split_command
from plugbox.sdk.permissions.decide import Operation, compile_policy
from plugbox.sdk.permissions.hosts import split_host_port
from plugbox.sdk.permissions.models import (
    EnvPermissions,
    FsPermissions,
    NetPermissions,
    Permissions,
    ShellPermissions,
)

__all__ = [
    "LearnedCall",
    "Refusal",
    "learning_permissions",
    "minimal_permissions",
    "missing_calls",
    "render_permissions",
    "unused_rules",
]

#: Rules that refuse a call because of its *form*, whatever the permissions say; learn mode
#: refuses these too, so no proposal can contain them.
FORM_RULES = frozenset({"path check", "host check", "command check", "address check"})

_GLOB_CHARS = frozenset("*?[\\")
_RESOLVED = " -> "


class LearnedCall(Protocol):
    """One recorded runtime call (the sandbox's ``Access`` has this shape)."""

    @property
    def operation(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def allowed(self) -> bool: ...
    @property
    def rule(self) -> str: ...
    @property
    def is_dir(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """A recorded call the declared permissions refuse, and the rule that refuses it."""

    operation: str
    target: str
    rule: str


def learning_permissions(declared: Permissions, folders: Iterable[str] = ()) -> Permissions:
    """What the kernel layers of a learn run are built from: the workspace readable, ``folders``
    (its existing top-level folders) and the declared write rules writable, and ``execve``.

    Decisions in a learn run do not come from this set (the sandbox's learning decider allows
    every well-formed call); it only opens the Landlock roots and ``execve``, so that calls the
    declared set would refuse can happen and be recorded. The workspace root itself is never
    writable, not even here: a job that could write it could plant the host's configuration or a
    module the host imports. A learn run that writes a file directly in the root therefore fails
    at the kernel (``EACCES``), as the same job would in a real run.
    """
    writable = tuple(_anchored(name, is_dir=True) for name in sorted(set(folders)))
    rules = [FsPermissions(mode="read", allow=("**",))]
    rules += [rule for rule in declared.fs if rule.mode == "readWrite" and rule.allow]
    if writable:
        rules.append(FsPermissions(mode="readWrite", allow=writable))
    return declared.model_copy(
        update={
            "fs": tuple(rules),
            "capabilities": tuple(sorted({*declared.capabilities, "shell"})),
        }
    )


def _anchored(path: str, *, is_dir: bool) -> str:
    escaped = "".join("\\" + c if c in _GLOB_CHARS else c for c in path)
    return "/" + escaped + ("/" if is_dir else "")


def _calls(calls: Iterable[LearnedCall], operation: str) -> list[LearnedCall]:
    wanted = [c for c in calls if c.operation == operation and c.rule not in FORM_RULES]
    return [c for c in wanted if _RESOLVED not in c.target]


def _at_root(call: LearnedCall) -> bool:
    """A file written directly in the workspace root: no rule can allow it (the root is never
    writable at the kernel, a lint rule), so no proposal contains it; the run failed there. A
    top-level folder is fine: ``/out/`` makes it a write root, which the host creates."""
    return call.operation == "fs.write" and "/" not in call.target and not call.is_dir


def _fs_rules(calls: Sequence[LearnedCall]) -> tuple[FsPermissions, ...]:
    writes = _prune({(c.target, c.is_dir) for c in _calls(calls, "fs.write") if not _at_root(c)})
    write_rules = FsPermissions(mode="readWrite", allow=writes) if writes else None
    covered = compile_policy(Permissions(fs=(write_rules,) if write_rules else ()))
    wanted_reads = set()
    for call in _calls(calls, "fs.read"):
        if not covered.decide("fs.read", call.target, is_dir=call.is_dir).allowed:
            wanted_reads.add((call.target, call.is_dir))
    reads = _prune(wanted_reads)
    rules = [rule for rule in (write_rules,) if rule is not None]
    if reads:
        rules.append(FsPermissions(mode="read", allow=reads))
    return tuple(rules)


def _prune(targets: set[tuple[str, bool]]) -> tuple[str, ...]:
    """Patterns for ``targets``, dropping any already covered by a directory pattern."""
    if any(path == "." for path, _ in targets):
        return ("/*",)  # listing the workspace root needs a root-level allow
    patterns = {_anchored(path, is_dir=is_dir) for path, is_dir in targets}
    directories = sorted(p for p in patterns if p.endswith("/"))
    kept = []
    for pattern in sorted(patterns):
        inside = any(pattern != d and pattern.startswith(d) for d in directories)
        if not inside:
            kept.append(pattern)
    return tuple(kept)


def _host_patterns(calls: Sequence[LearnedCall]) -> tuple[str, ...]:
    found = set()
    for call in _calls(calls, "net.connect"):
        host, port = split_host_port(call.target)
        shown = f"[{host}]" if ":" in host else host
        found.add(shown if port is None else f"{shown}:{port}")
    return tuple(sorted(found))


def _command_pattern(command: str) -> str:
    argv = split_command(command)
    escaped = [argv[0]] + ["".join(f"[{c}]" if c in "*?[" else c for c in a) for a in argv[1:]]
    return shlex.join(escaped)


def minimal_permissions(
    calls: Iterable[LearnedCall], *, base: Permissions | None = None
) -> Permissions:
    """The smallest permission set allowing every recorded call (quotas kept from ``base``)."""
    recorded = list(calls)
    commands = tuple(sorted({_command_pattern(c.target) for c in _calls(recorded, "shell.run")}))
    proposal = Permissions(
        fs=_fs_rules(recorded),
        net=NetPermissions(allow_hosts=_host_patterns(recorded)),
        env=EnvPermissions(allow=tuple(sorted({c.target for c in _calls(recorded, "env.read")}))),
        shell=ShellPermissions(allow=commands),
        capabilities=("shell",) if commands else (),
        quotas=base.quotas if base is not None else Permissions().quotas,
    )
    policy = compile_policy(proposal)
    for call in recorded:
        if call.rule in FORM_RULES or _RESOLVED in call.target or _at_root(call):
            continue
        verdict = policy.decide(_operation(call.operation), call.target, is_dir=call.is_dir)
        if not verdict.allowed:  # a bug here must never produce a set that does not work
            raise AssertionError(f"learned set refuses {call.operation} {call.target}: {verdict}")
    return proposal


def _operation(name: str) -> Operation:
    for operation in ("fs.read", "fs.write", "net.connect", "env.read", "shell.run"):
        if name == operation:
            return operation
    raise ValueError(f"unknown operation {name!r}")


def missing_calls(calls: Iterable[LearnedCall]) -> tuple[Refusal, ...]:
    """Recorded calls the declared permissions refused (as recorded), malformed ones included."""
    seen: dict[tuple[str, str], Refusal] = {}
    for call in calls:
        if not call.allowed and _RESOLVED not in call.target:
            seen.setdefault(
                (call.operation, call.target), Refusal(call.operation, call.target, call.rule)
            )
    return tuple(seen.values())


def unused_rules(declared: Permissions, calls: Iterable[LearnedCall]) -> tuple[str, ...]:
    """Declared allow rules no recorded call needed, as the labels decisions use."""
    policy = compile_policy(declared)
    used = set()
    recorded = list(calls)
    for call in recorded:
        if _RESOLVED in call.target:
            continue
        verdict = policy.decide(_operation(call.operation), call.target, is_dir=call.is_dir)
        if verdict.allowed:
            used.add(verdict.rule)
    labels = [
        f"fs[{n}].allow[{i}] {pattern!r}"
        for n, rules in enumerate(declared.fs)
        for i, pattern in enumerate(rules.allow)
    ]
    labels += [f"net.allow_hosts[{i}] {p!r}" for i, p in enumerate(declared.net.allow_hosts)]
    labels += [f"env.allow {name!r}" for name in declared.env.allow]
    labels += [f"shell.allow[{i}] {p!r}" for i, p in enumerate(declared.shell.allow)]
    unused = [label for label in labels if label not in used]
    if "shell" in declared.capabilities and not any(c.operation == "shell.run" for c in recorded):
        unused.append("capabilities 'shell'")
    return tuple(unused)


def render_permissions(permissions: Permissions) -> str:
    """``permissions`` as the Python an author pastes into ``@job(permissions=...)``."""
    fs = [f"perms.FsPermissions(mode={r.mode!r}, allow={list(r.allow)!r})" for r in permissions.fs]
    parts = []
    if len(fs) == 1:
        parts.append(f"fs={fs[0]}")
    elif fs:
        parts.append("fs=[\n        " + ",\n        ".join(fs) + ",\n    ]")
    if permissions.net.allow_hosts:
        parts.append(f"net=perms.NetPermissions(allow_hosts={list(permissions.net.allow_hosts)!r})")
    if permissions.env.allow:
        parts.append(f"env=perms.EnvPermissions(allow={list(permissions.env.allow)!r})")
    if permissions.shell.allow:
        parts.append(f"shell=perms.ShellPermissions(allow={list(permissions.shell.allow)!r})")
    if permissions.capabilities:
        parts.append(f"capabilities={list(permissions.capabilities)!r}")
    if not parts:
        return "perms.Permissions()"
    return "perms.Permissions(\n" + "".join(f"    {part},\n" for part in parts) + ")"
