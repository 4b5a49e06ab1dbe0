"""Which workspace directories the kernel (Landlock) should open to a run, derived from fs globs.

Landlock grants whole directory trees and cannot subtract, so each allow pattern becomes the
directory before its first wildcard (``.plugbox/x/**`` -> ``.plugbox/x``; ``data/*.json`` ->
``data``; a pattern without a slash, which matches at any depth, -> the workspace root). Deny
patterns inside such a directory are enforced by ``runtime.fs``, not by the kernel — the security
model says so. Operator grants narrow the roots: a declared root survives only as far as some
grant also covers it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from plugbox.sdk.permissions import Permissions

_WILDCARDS = frozenset("*?[\\")


def static_prefix(pattern: str, *, write: bool = False, is_dir: bool = False) -> str | None:
    """The path a glob can only match at or inside (``""`` = the workspace root); None for ``!``.

    A fully literal anchored pattern (``/pyproject.toml``) names one path: for reading, that
    path itself is granted (Landlock takes file rules; a missing file is skipped); for writing,
    its parent, since the job may need to create it.
    """
    if pattern.startswith("!"):
        return None
    anchored = "/" in pattern.rstrip("/")
    if not anchored:
        return ""
    parts = pattern.strip("/").split("/")
    literal: list[str] = []
    for part in parts:
        if _WILDCARDS & set(part):
            break
        literal.append(part)
    else:
        # A literal file: writing it may mean creating it, so the parent must be writable. A
        # literal directory (a trailing '/', or other patterns below it) is the root itself.
        if write and not pattern.endswith("/") and not is_dir:
            literal = literal[:-1]
    return "/".join(literal)


def _minimal(paths: Iterable[str]) -> tuple[str, ...]:
    """Drop paths already covered by an ancestor in the set."""
    result: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(_covers(kept, path) for kept in result):
            result.append(path)
    return tuple(sorted(result))


def _covers(ancestor: str, path: str) -> bool:
    return ancestor == "" or path == ancestor or path.startswith(ancestor + "/")


def _roots(permissions: Permissions, *, write: bool) -> tuple[str, ...]:
    prefixes = []
    for rule in permissions.fs:
        if write and rule.mode != "readWrite":
            continue
        for pattern in rule.allow:
            below = pattern.strip("/") + "/"
            is_dir = any(other.lstrip("/").startswith(below) for other in rule.allow)
            prefix = static_prefix(pattern, write=write, is_dir=is_dir)
            if prefix is not None:
                prefixes.append(prefix)
    return _minimal(prefixes)


def _intersect(declared: tuple[str, ...], granted: tuple[str, ...]) -> tuple[str, ...]:
    kept = []
    for d in declared:
        for g in granted:
            if _covers(g, d):
                kept.append(d)
            elif _covers(d, g):
                kept.append(g)
    return _minimal(kept)


def workspace_roots(
    declared: Permissions, grants: tuple[Permissions, ...] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(read_roots, write_roots)``, workspace-relative; write roots are also readable."""
    read = _roots(declared, write=False)
    write = _roots(declared, write=True)
    for grant in grants:
        read = _intersect(read, _roots(grant, write=False))
        write = _intersect(write, _roots(grant, write=True))
    return read, write


def absolute(workspace: str, relative: Iterable[str]) -> tuple[str, ...]:
    """Workspace-relative roots as absolute paths under the real workspace path."""
    base = os.path.realpath(workspace)
    return tuple(os.path.join(base, r) if r else base for r in relative)
