"""Lint rules for permission sets: rules that look like they grant something but never can.

A deny that swallows an allow, a shell allow without the ``shell`` capability, an unknown
capability: each would be a silent no-op at run time, which a reviewer reads as a grant. They are
reported as :class:`~plugbox.sdk.errors.Problem` values with their location instead.

One rule is about the kernel rather than the glob: Landlock grants a directory tree, the one
before a pattern's first wildcard (:func:`static_prefix`). A ``readWrite`` pattern whose tree is
the workspace root (``*.log`` matches at any depth; ``**``; a file directly in the root) would make
the whole root writable to code that bypasses ``runtime.fs`` — enough to plant ``plugbox.toml`` or
``socket.py`` where the operator runs the host. Such a pattern is refused with what to write.

Whether a deny covers *every* path an allow pattern can match is undecidable in general for globs
with negation, so the fs check works on witnesses: concrete paths built from the allow pattern
(each ``*`` as nothing, one name and two names; each ``**`` as zero, one and two segments). If
every witness the allow pattern really matches is denied, the allow is reported as unreachable.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from plugbox.sdk.errors import Problem, TargetError
from plugbox.sdk.permissions.commands import CommandList, parse_command_pattern
from plugbox.sdk.permissions.globs import GlobList
from plugbox.sdk.permissions.hosts import HostList, parse_host_pattern
from plugbox.sdk.permissions.models import KNOWN_CAPABILITIES, Permissions
from plugbox.sdk.permissions.paths import normalize_path

_WILDCARDS = frozenset("*?[\\")
_STAR_FILLS = ("", "w", "wq")
_SEGMENT_FILLS = ("", "d/", "d/e/")
_MAX_WITNESSES = 64


def static_prefix(pattern: str, *, write: bool = False, is_dir: bool = False) -> str | None:
    """The path a glob can only match at or inside (``""`` = the workspace root); None for ``!``.

    What Landlock is asked to grant for the pattern. A fully literal anchored pattern
    (``/pyproject.toml``) names one path: for reading, that path itself (Landlock takes file
    rules); for writing, its parent, since the job may need to create it — unless ``is_dir``
    (a trailing ``/``, or other patterns of the rule set below it) says it is a folder.
    """
    if pattern.startswith("!"):
        return None
    if "/" not in pattern.rstrip("/"):
        return ""  # no slash: matches at any depth
    literal: list[str] = []
    for part in pattern.strip("/").split("/"):
        if _WILDCARDS & set(part):
            break
        literal.append(part)
    else:
        if write and not pattern.endswith("/") and not is_dir:
            literal = literal[:-1]
    return "/".join(literal)


def is_folder_pattern(pattern: str, allow: tuple[str, ...]) -> bool:
    """Whether a literal ``pattern`` names a folder: other patterns of its rule set lie below it."""
    below = pattern.strip("/") + "/"
    return any(other.lstrip("/").startswith(below) for other in allow)


def lint_permissions(
    permissions: Permissions, where: str = "permissions", *, grant: bool = False
) -> list[Problem]:
    """Every lint problem of one permission set, located under ``where``.

    ``grant``: the set is an operator's grant, which only narrows what a plugin declared, so
    its ``readWrite`` patterns never become kernel write roots of their own and may be wide.
    """
    problems: list[Problem] = []
    for index, name in enumerate(permissions.capabilities):
        if name not in KNOWN_CAPABILITIES:
            known = ", ".join(sorted(KNOWN_CAPABILITIES))
            problems.append(
                Problem(
                    f"{where}.capabilities[{index}]", f"unknown capability {name!r}; known: {known}"
                )
            )
    if permissions.shell.allow and "shell" not in permissions.capabilities:
        problems.append(
            Problem(
                f"{where}.shell.allow",
                "commands are allowed but the 'shell' capability is missing, so runtime.shell "
                "refuses every call; add capabilities=['shell']",
            )
        )
    if not grant:
        problems += _root_writes(permissions, where)
    elif permissions.net.allow_hosts_from or any(rule.allow_from for rule in permissions.fs):
        problems.append(
            Problem(
                where,
                "a grant cannot bind rules to config (allow_hosts_from, allow_from): write the"
                " host or path itself; set the plugin's bound values under [plugins.ID.config]",
            )
        )
    problems += _unreachable_fs(permissions, where)
    problems += _unreachable_hosts(permissions, where)
    problems += _unreachable_commands(permissions, where)
    return problems


def _unreachable_fs(permissions: Permissions, where: str) -> list[Problem]:
    denies = [p for rule in permissions.fs for p in rule.deny]
    if not denies:
        return []
    deny = GlobList(denies)
    problems: list[Problem] = []
    for set_index, rule in enumerate(permissions.fs):
        for index, pattern in enumerate(rule.allow):
            if pattern.startswith("!"):
                continue
            allow = GlobList([pattern])
            deciders: set[int] = set()
            seen_any = False
            for path, is_dir in _path_witnesses(pattern):
                if allow.match(path, is_dir=is_dir) is None:
                    continue
                seen_any = True
                hit = deny.match(path, is_dir=is_dir)
                if hit is None:
                    break
                deciders.add(hit)
            else:
                if seen_any:
                    which = ", ".join(repr(denies[i]) for i in sorted(deciders))
                    problems.append(
                        Problem(
                            f"{where}.fs[{set_index}].allow[{index}]",
                            f"{pattern!r} can never be used: deny {which} covers every path it "
                            "matches (deny always beats allow); remove one of them",
                        )
                    )
    return problems


def _root_writes(permissions: Permissions, where: str) -> list[Problem]:
    problems: list[Problem] = []
    for set_index, rule in enumerate(permissions.fs):
        if rule.mode != "readWrite":
            continue
        for index, pattern in enumerate(rule.allow):
            folder = is_folder_pattern(pattern, rule.allow)
            if static_prefix(pattern, write=True, is_dir=folder) != "":
                continue
            body = pattern.lstrip("/")
            instead = f"'data/{body}'"
            if "/" not in body.rstrip("/") and not _WILDCARDS & set(body):
                instead += f" (or '/{body.rstrip('/')}/' if it is a folder)"
            why = (
                "has no '/', so it matches at any depth"
                if "/" not in pattern.rstrip("/")
                else "starts at the workspace root"
            )
            problems.append(
                Problem(
                    f"{where}.fs[{set_index}].allow[{index}]",
                    f"readWrite {pattern!r} would make the whole workspace root writable at the "
                    f"kernel (it {why}, and Landlock grants the folder before the first "
                    "wildcard); the workspace root is never writable, so that nothing a job "
                    "writes can pass for the host's configuration or code. Name a folder: "
                    f"{instead}, or '.plugbox/<plugin>/'",
                )
            )
    return problems


def _path_witnesses(pattern: str) -> Iterator[tuple[str, bool]]:
    is_dir = pattern.endswith("/")
    body = pattern.strip("/")
    parts = _split_wildcards(body)
    choices = [_fills(token) for token in parts]
    for count, combo in enumerate(itertools.product(*choices)):
        if count >= _MAX_WITNESSES:
            return
        text = "".join(combo).replace("//", "/").strip("/")
        try:
            path = normalize_path(text)
        except TargetError:
            continue
        if path:
            yield path, is_dir
            if not is_dir:
                yield path, True


def _split_wildcards(body: str) -> list[str]:
    """Split a glob into literal runs and wildcard tokens (``**/``, ``/**``, ``*``, ``?``, ``[..]``)."""
    tokens: list[str] = []
    i = 0
    literal = ""
    while i < len(body):
        if body.startswith("**", i):
            tokens += [literal, "**"] if literal else ["**"]
            literal = ""
            i += 2
            if body.startswith("/", i):
                tokens[-1] = "**/"
                i += 1
        elif body[i] in "*?":
            tokens += [literal, body[i]] if literal else [body[i]]
            literal = ""
            i += 1
        elif body[i] == "[":
            end = body.find("]", i + 2)
            end = len(body) - 1 if end < 0 else end
            tokens += [literal, body[i : end + 1]] if literal else [body[i : end + 1]]
            literal = ""
            i = end + 1
        else:
            literal += body[i]
            i += 1
    if literal:
        tokens.append(literal)
    return tokens


def _fills(token: str) -> tuple[str, ...]:
    if token == "**/":
        return _SEGMENT_FILLS
    if token == "**":
        return ("w", "d/w", "d/e/w")
    if token == "*":
        return _STAR_FILLS
    if token == "?":
        return ("q",)
    if token.startswith("["):
        inner = token[1:-1]
        if inner[:1] in ("!", "^"):
            return tuple(c for c in "qz0" if c not in inner[1:])[:1] or ("q",)
        return (inner[0],)
    return (token,)


def _unreachable_hosts(permissions: Permissions, where: str) -> list[Problem]:
    if not permissions.net.deny_hosts:
        return []
    deny = HostList(permissions.net.deny_hosts)
    problems: list[Problem] = []
    for index, raw in enumerate(permissions.net.allow_hosts):
        pattern = parse_host_pattern(raw)
        host = "w." + pattern.value if pattern.kind == "wildcard" else pattern.value
        if pattern.kind == "network":
            continue
        ports = [pattern.port] if pattern.port is not None else [None, 443]
        hits = [deny.match(host, port) for port in ports]
        if all(hit is not None for hit in hits):
            deciding = permissions.net.deny_hosts[hits[0] or 0]
            problems.append(
                Problem(
                    f"{where}.net.allow_hosts[{index}]",
                    f"{raw!r} can never be used: deny_hosts {deciding!r} covers it",
                )
            )
    return problems


def _unreachable_commands(permissions: Permissions, where: str) -> list[Problem]:
    if not permissions.shell.deny:
        return []
    deny = CommandList(permissions.shell.deny)
    problems: list[Problem] = []
    for index, raw in enumerate(permissions.shell.allow):
        pattern = parse_command_pattern(raw)
        argv = tuple(_command_witness(token) for token in pattern.tokens if token != "**")
        hit = deny.match(argv)
        if hit is not None:
            problems.append(
                Problem(
                    f"{where}.shell.allow[{index}]",
                    f"{raw!r} can never be used: shell.deny {permissions.shell.deny[hit]!r} "
                    "covers it (deny always beats allow)",
                )
            )
    return problems


def _command_witness(token: str) -> str:
    return "".join("".join(_fills(part)[:1]) or "w" for part in _split_wildcards(token)) or "w"
