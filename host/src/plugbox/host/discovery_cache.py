"""Remembered discovery answers, so a plugin is imported once per install, not once per command.

Importing a plugin happens in a confined child and costs that plugin's import time — its whole
timeout (20 s) for one that hangs. What such a child answers depends only on the plugin's
installed files, the files of what it requires, and this host's Python and plugbox. So the
answer is kept in the state directory under a key made of exactly those (see ADR 0013), and a
command reuses it while the key matches.

What is kept is the child's raw answer — the manifest as JSON, or the error its import raised,
or that it timed out — never a verdict: the host validates a remembered manifest again on every
use (:func:`plugbox.host.discovery._resolved`), so nothing discovery checks is skipped, and a
host upgrade that changes the rules applies at once.

The cache is an optimisation only. A file that is missing, unreadable, corrupt, of another
format, a symlink, not owned by this user or writable by others is ignored (and replaced on
the next write). It lives in the state directory, which is this user's, mode 0700, and never
inside the workspace (``load_config`` refuses that), so no job can write it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from plugbox.sdk import __version__ as sdk_version

if TYPE_CHECKING:
    from plugbox.host.discovery import Answer, PluginEntryPoint

#: The cache file's name in the state directory.
CACHE_FILE = "discovery-cache.json"
#: Bumped when the layout below changes; a file of another format is ignored.
FORMAT = 1
#: An editable install's source tree is walked for its files' sizes and times; a tree with more
#: files than this (a monorepo, a checkout with data) is not worth walking on every command, so
#: such a plugin is not cached and is imported each time, as without a cache.
MAX_EDITABLE_FILES = 2_000
#: Folders of an editable project that hold no code the plugin imports.
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "build", "dist"})
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class DiscoveryCache:
    """The remembered answers in one state directory's :data:`CACHE_FILE`.

    With ``reuse=False`` (``plugbox plugins reload``) nothing is looked up: every plugin is
    imported again and the file is replaced by those answers alone.
    """

    def __init__(self, state_dir: Path, *, reuse: bool = True) -> None:
        self.path = state_dir / CACHE_FILE
        self.reuse = reuse
        self._host = _host_key()
        self._keys: dict[PluginEntryPoint, str] = {}

    def lookup(
        self,
        installed: Sequence[tuple[metadata.Distribution, tuple[PluginEntryPoint, ...]]],
        *,
        timeout_s: float,
        search_path: Sequence[str],
    ) -> dict[PluginEntryPoint, Answer]:
        """The remembered answers still valid for ``installed``; the others are left out.

        ``search_path`` is where the child imports from, to find what the plugins require.
        Also notes each entry point's key, for :meth:`save`.
        """
        from plugbox.host.discovery import PluginProblem

        self._keys = {}
        versions = _installed_versions((dist for dist, _ in installed), search_path)
        for dist, entries in installed:
            files = _files_key(dist, versions)
            if files is None:
                continue
            for entry in entries:
                self._keys[entry] = _digest([self._host, timeout_s, entry.name, entry.value, files])
        stored = self._read() if self.reuse else {}
        found: dict[PluginEntryPoint, Answer] = {}
        for entry, key in self._keys.items():
            kept = stored.get(key)
            if not isinstance(kept, Mapping):
                continue
            record, problem = kept.get("record"), kept.get("timeout")
            if isinstance(record, Mapping) and record.get("entry_point") == entry.name:
                found[entry] = {**record, "remembered": True}
            elif isinstance(problem, Mapping) and isinstance(problem.get("reason"), str):
                detail = problem.get("detail")
                found[entry] = PluginProblem(
                    entry,
                    "timeout",
                    problem["reason"],
                    detail if isinstance(detail, str) else "",
                    remembered=True,
                )
        return found

    def save(self, answers: Mapping[PluginEntryPoint, Answer]) -> None:
        """Keep the answers worth keeping, replacing the file (uninstalled plugins drop out).

        A child that crashed is not remembered: that may be the machine's fault (memory, a
        broken sandbox), not the plugin's. A plugin without a key (see :func:`_files_key`) is
        not remembered either. Failing to write is not an error: the next command asks again.
        """
        kept: dict[str, Any] = {}
        for entry, answer in answers.items():
            key = self._keys.get(entry)
            if key is None:
                continue
            if isinstance(answer, Mapping):
                kept[key] = {"record": {k: v for k, v in answer.items() if k != "remembered"}}
            elif answer.kind == "timeout":
                kept[key] = {"timeout": {"reason": answer.reason, "detail": answer.detail}}
        self._write({"format": FORMAT, "plugins": kept})

    def _read(self) -> Mapping[str, Any]:
        try:
            # O_NOFOLLOW: a symlink planted in place of the file is refused, never followed.
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return {}
            try:
                data = json.loads(file.read())
            except (OSError, ValueError, RecursionError):
                return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        plugins = data.get("plugins")
        return plugins if isinstance(plugins, dict) else {}

    def _write(self, data: Mapping[str, Any]) -> None:
        directory = self.path.parent
        try:
            # Written beside the target then renamed over it: a reader sees the old file or
            # the new one, never half of one, and two commands writing at once both succeed.
            fd, name = tempfile.mkstemp(prefix=".discovery-", suffix=".tmp", dir=directory)
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, separators=(",", ":"))
            os.replace(name, self.path)
        except (OSError, TypeError, ValueError):
            with contextlib.suppress(OSError):
                os.unlink(name)


def _host_key() -> list[str]:
    """What a child's answer depends on besides the plugin: this Python and the plugbox parts
    the child imports (the SDK the plugin builds its manifest with, the sandbox that loads it)."""
    return [sys.version, sys.executable, sdk_version, _version("plugbox-sandbox")]


def _files_key(dist: metadata.Distribution, versions: Mapping[str, str]) -> list[Any] | None:
    """The distribution's name, version, where it is, the size and time of each of its files,
    and the installed version of each distribution it requires; None when it cannot be cached.

    Sizes and modification times (nanoseconds), not content hashes: every install and upgrade
    writes new files, and reading every file's bytes on every command would cost what the cache
    saves. A required distribution's version is in the key because a plugin that failed for
    want of it must be tried again once it is installed.
    """
    base = getattr(dist, "_path", None)  # the .dist-info folder; PathDistribution has no API
    if not isinstance(base, Path):
        return None
    files: list[tuple[str, int, int]] = []
    try:
        for child in sorted(base.iterdir()):
            files.append(_stat(child))
        for listed in dist.files or ():
            files.append(_stat(Path(str(listed.locate()))))
        editable = _editable_root(dist)
        if editable is not None:
            tree = _source_files(editable)
            if tree is None:
                return None
            files.extend(tree)
    except OSError:
        return None
    required = sorted(
        (name, versions.get(name, "")) for name in map(_requirement, dist.requires or ()) if name
    )
    return [dist.metadata["Name"], dist.version, str(base), files, required]


def _editable_root(dist: metadata.Distribution) -> Path | None:
    """The project folder of an editable install (PEP 660 ``direct_url.json``), else None."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not (data.get("dir_info") or {}).get("editable"):
        return None
    url = urlparse(str(data.get("url", "")))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def _source_files(root: Path) -> list[tuple[str, int, int]] | None:
    """Every file below an editable project's ``root`` (hidden and build folders skipped), or
    None when there are more than :data:`MAX_EDITABLE_FILES`."""
    found: list[tuple[str, int, int]] = []
    # A folder that cannot be listed would silently drop out of the key: refuse to cache.
    for folder, dirs, names in os.walk(root, onerror=_raise):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(names):
            found.append(_stat(Path(folder, name)))
            if len(found) > MAX_EDITABLE_FILES:
                return None
    return found


def _raise(error: OSError) -> None:
    raise error


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return (str(path), -1, -1)  # RECORD may list a file since removed: that is a change too
    return (str(path), info.st_size, info.st_mtime_ns)


def _installed_versions(
    plugins: Iterable[metadata.Distribution], search_path: Sequence[str]
) -> dict[str, str]:
    """Installed version of every distribution the plugins require, by normalised name ("" for
    one that is missing), found where the child would import it from."""
    wanted = {name for dist in plugins for name in map(_requirement, dist.requires or ()) if name}
    return {name: _version(name, search_path) for name in wanted}


def _version(name: str, search_path: Sequence[str] | None = None) -> str:
    found = metadata.distributions(name=name, path=list(search_path or sys.path))
    dist = next(iter(found), None)
    return dist.version if dist is not None else ""


def _requirement(line: str) -> str:
    match = _REQUIREMENT_NAME.match(line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def _digest(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
