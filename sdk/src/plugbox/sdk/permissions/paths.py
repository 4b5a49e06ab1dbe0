"""Workspace paths: the one place a job's path becomes the form every fs rule is matched against.

A job names files relative to the workspace root. Before any allow or deny rule is consulted the
path is reduced to a canonical POSIX form (``src/pkg/mod.py``: no ``./``, no ``//``, no trailing
``/``; ``""`` is the root itself), and every trick that could point outside the workspace or
confuse a matcher is refused here, once, with a reason a person can act on. Nothing is resolved
against the disk: ``data/../x`` is refused rather than rewritten, because behind a symlink
``data/..`` need not be the workspace root.

Backslash is an ordinary file-name character on POSIX and is kept as one; the sandbox runs on Linux.
"""

from __future__ import annotations

import os

from plugbox.sdk.errors import TargetError

__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "normalize_path"]

MAX_PATH_BYTES = 4096
"""Longest accepted path, in UTF-8 bytes after normalisation (Linux ``PATH_MAX``)."""

MAX_NAME_BYTES = 255
"""Longest accepted single file or directory name, in UTF-8 bytes (Linux ``NAME_MAX``)."""


def normalize_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as a canonical workspace-relative POSIX path, or raise ``TargetError``.

    ``"."``, ``""`` and ``"./"`` all name the workspace root and become ``""``.
    """
    raw = path if isinstance(path, str) else os.fspath(path)
    if not isinstance(raw, str):
        raise TargetError(repr(raw), "a workspace path must be text, not bytes")
    # Every fs call comes through here and nearly every path a job uses is already normal, so
    # recognise that first, with string methods only (a regex costs more than all of these).
    # ASCII makes characters bytes, and a path no longer than a name has no over-long name.
    if (
        raw.isascii()
        and 0 < len(raw) <= MAX_NAME_BYTES
        and raw[0] != "/"
        and raw[-1] != "/"
        and "//" not in raw
        and "\0" not in raw
        and ("." not in raw or ("/./" not in (framed := f"/{raw}/") and "/../" not in framed))
    ):
        return raw
    return _normalize(raw)


def _normalize(raw: str) -> str:
    """The general case: reduce ``raw`` to normal form or say why it cannot be used."""
    if "\0" in raw:
        raise TargetError(raw, "contains a NUL byte, which no file name can hold")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: either undecodable bytes smuggled in with surrogateescape, or text that
        # no file system can store. Either way the name we would check is not the name opened.
        raise TargetError(
            raw, "is not valid text (it holds undecodable bytes or lone surrogates)"
        ) from None
    if raw.startswith("/"):
        raise TargetError(
            raw, "is an absolute path; give a path relative to the workspace root, e.g. 'data/x'"
        )

    names = [name for name in raw.split("/") if name and name != "."]
    if ".." in names:
        raise TargetError(
            raw, "'..' would leave the workspace; paths are not resolved, so write it without '..'"
        )
    for name in names:
        size = len(name.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise TargetError(
                raw,
                f"the name {name[:20]!r}... is {size} bytes long; "
                f"a file or directory name may be at most {MAX_NAME_BYTES} bytes",
            )
    normal = "/".join(names)
    size = len(normal.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise TargetError(
            raw[:60] + "...", f"is {size} bytes long; a path may be at most {MAX_PATH_BYTES} bytes"
        )
    return normal
