"""Which workspace directories the kernel (Landlock) should open to a run, derived from fs globs.

Landlock grants whole directory trees and cannot subtract, so each allow pattern becomes the
directory before its first wildcard (``.plugbox/x/**`` -> ``.plugbox/x``; ``data/*.json`` ->
``data``; a pattern without a slash, which matches at any depth, -> the workspace root). Deny
patterns inside such a directory are enforced by ``runtime.fs``, not by the kernel — the security
model says so. Operator grants narrow the roots: a declared root survives only as far as some
grant also covers it.

The workspace root itself is never a write root. A job that could write there could plant
``plugbox.toml``, ``sitecustomize.py`` or ``socket.py`` where the operator runs the CLI; a
``readWrite`` pattern that would need it (``*.log``, ``**``, ``/notes.txt``) is a lint error
(:func:`plugbox.sdk.permissions.lint_permissions`), and should one reach this module anyway (a
harness building a request by hand) its write grant is dropped here: narrower than declared,
never wider.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from plugbox.sdk.permissions import Permissions
from plugbox.sdk.permissions.lint import is_folder_pattern, static_prefix

__all__ = ["absolute", "partial_write_roots", "static_prefix", "workspace_roots"]


def _minimal(paths: Iterable[str]) -> tuple[str, ...]:
    """Drop paths already covered by an ancestor in the set."""
    result: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(_covers(kept, path) for kept in result):
            result.append(path)
    return tuple(sorted(result))


def _covers(ancestor: str, path: str) -> bool:
    return ancestor == "" or path == ancestor or path.startswith(ancestor + "/")


def _roots(permissions: Permissions, *, write: bool, grant: bool = False) -> tuple[str, ...]:
    # A grant only narrows: its "**" means "whatever was declared", so it may cover the root.
    prefixes = []
    for rule in permissions.fs:
        if write and rule.mode != "readWrite":
            continue
        for pattern in rule.allow:
            folder = is_folder_pattern(pattern, rule.allow)
            prefix = static_prefix(pattern, write=write, is_dir=folder)
            if prefix is not None and (prefix or not write or grant):
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
        read = _intersect(read, _roots(grant, write=False, grant=True))
        write = _intersect(write, _roots(grant, write=True, grant=True))
    return read, write


def partial_write_roots(declared: Permissions, write_roots: tuple[str, ...]) -> tuple[str, ...]:
    """The write roots the kernel opens wider than a ``readWrite`` pattern asked for.

    ``data/summary.json`` or ``data/*.json`` can only be granted as the folder ``data`` (the job
    may need to create the file, and Landlock grants creation per folder): the kernel then lets
    code that bypasses ``runtime.fs`` write anything in ``data``. The run record says so.
    """
    whole: list[str] = []
    part: list[str] = []
    for rule in declared.fs:
        if rule.mode != "readWrite":
            continue
        for pattern in rule.allow:
            folder = is_folder_pattern(pattern, rule.allow)
            prefix = static_prefix(pattern, write=True, is_dir=folder)
            if prefix is None:
                continue
            exact = pattern.strip("/") in (prefix, f"{prefix}/**", f"{prefix}/**/*")
            (whole if exact else part).append(prefix)
    return tuple(
        root
        for root in write_roots
        if any(_covers(p, root) for p in part) and not any(_covers(w, root) for w in whole)
    )


def absolute(workspace: str, relative: Iterable[str]) -> tuple[str, ...]:
    """Workspace-relative roots as absolute paths under the real workspace path."""
    base = os.path.realpath(workspace)
    return tuple(os.path.join(base, r) if r else base for r in relative)
