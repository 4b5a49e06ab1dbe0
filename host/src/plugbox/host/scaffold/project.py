"""The names and files of a new plugin project, and writing them without overwriting anything.

One NAME gives every name the project needs (:class:`PluginNames`): ``acme-notes`` is the plugin
id (the ``PLUGIN`` in ``PLUGIN:JOB`` and the entry-point name), ``acme_notes`` the import package
and ``plugbox-acme-notes`` the distribution. The name is checked before anything is written, and
a refusal suggests a name that would work.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import shutil
import string
import sys
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from plugbox.sdk.manifest import DEFAULT_SDK_RANGE

#: The version a new project starts at.
VERSION = "0.1.0"
#: The SDK's limit for a plugin id.
MAX_NAME_LENGTH = 64
# Stricter than the SDK's id pattern: the name must also make a Python package (no leading digit,
# no dots) and a tidy distribution name (no doubled or trailing separators).
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_RULE = (
    "lowercase letters, digits and single hyphens or underscores between them, "
    f"starting with a letter, at most {MAX_NAME_LENGTH} characters"
)
# Top-level packages a plugin must not take besides the standard library's: our namespace, and
# folder names that tools treat as test or source roots.
_RESERVED = frozenset({"plugbox", "src", "test", "tests"})
_TEMPLATES = "plugbox.host.scaffold"
#: template (under templates/) -> path in the new project, where ``$package`` is substituted.
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "package_init.py.tmpl": "src/$package/__init__.py",
    "plugin.py.tmpl": "src/$package/plugin.py",
    "test_plugin.py.tmpl": "tests/test_plugin.py",
}


class ScaffoldError(ValueError):
    """``plugbox new`` refuses a name or a target; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class PluginNames:
    """Every name a plugin project derives from the one its author chose."""

    plugin_id: str  # manifest id, PLUGIN in PLUGIN:JOB, entry-point name, .plugbox/<id>/ folder
    package: str  # import package under src/
    distribution: str  # what `pip install` names; the wheel file is named after it
    title: str  # the manifest's human-readable name


@dataclass(frozen=True, slots=True)
class NewProject:
    """A project ``create_project`` wrote: where, under which names, and its files."""

    path: Path
    names: PluginNames
    files: tuple[str, ...]


def plugin_names(name: str) -> PluginNames:
    """The names derived from ``name``; :class:`ScaffoldError` with a suggestion if it is unusable."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a valid plugin name: use {_RULE}. "
            f"Try: plugbox new {suggest_name(name)}"
        )
    clash = _package_clash(name.replace("-", "_"))
    if clash:
        raise ScaffoldError(
            f"{name!r} would make the import package {name.replace('-', '_')!r}, which {clash}. "
            f"Try: plugbox new {suggest_name(name)}"
        )
    words = re.split(r"[-_]", name)
    return PluginNames(
        plugin_id=name,
        package=name.replace("-", "_"),
        distribution=name.replace("_", "-")
        if name.startswith(("plugbox-", "plugbox_"))
        else "plugbox-" + name.replace("_", "-"),
        title=" ".join(word.capitalize() for word in words),
    )


def _package_clash(package: str) -> str | None:
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return "is a Python keyword"
    if package in sys.stdlib_module_names:
        return "would hide the standard library module of that name"
    if package in _RESERVED:
        return "is reserved (plugbox's namespace or a test/source folder name)"
    if importlib.util.find_spec(package) is not None:
        return "would hide a module that is already installed here"
    return None


def suggest_name(name: str) -> str:
    """A valid name close to ``name``: ``"Acme Notes!"`` -> ``acme-notes``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name)  # AcmeNotes -> Acme-Notes
    ascii_only = unicodedata.normalize("NFKD", spaced).encode("ascii", "ignore").decode()
    candidate = "-".join(re.findall(r"[a-z0-9]+", ascii_only.lower())) or "my-plugin"
    if not candidate[0].isalpha():
        candidate = f"plugin-{candidate}"
    candidate = candidate[:MAX_NAME_LENGTH].rstrip("-")
    if _package_clash(candidate.replace("-", "_")):
        candidate = candidate[: MAX_NAME_LENGTH - len("-plugin")].rstrip("-") + "-plugin"
    return candidate


def render_project(names: PluginNames) -> dict[str, str]:
    """Every file of the new project: relative path -> text."""
    values = {
        "version": VERSION,
        "wheel": f"{names.distribution.replace('-', '_')}-{VERSION}-py3-none-any.whl",
        "plugin_id": names.plugin_id,
        "package": names.package,
        "distribution": names.distribution,
        "title": names.title,
        "sdk_range": DEFAULT_SDK_RANGE,
    }
    templates = resources.files(_TEMPLATES) / "templates"
    return {
        string.Template(target).substitute(values): string.Template(
            (templates / template).read_text(encoding="utf-8")
        ).substitute(values)
        for template, target in _FILES.items()
    }


def create_project(name: str, parent: Path) -> NewProject:
    """Write the project for ``name`` into ``parent/name``, which must not exist yet."""
    names = plugin_names(name)
    files = render_project(names)
    if not parent.is_dir():
        raise ScaffoldError(f"{parent} is not a directory; create it first or pick another one")
    target = parent / name
    try:
        target.mkdir()
    except FileExistsError:
        raise ScaffoldError(
            f"{target} already exists, and plugbox new never overwrites anything: "
            "pick another name or another parent directory (--directory), or move it away"
        ) from None
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as file:
                file.write(text)
    except BaseException:
        # The directory was created a moment ago by this call, so it holds only our own files.
        shutil.rmtree(target, ignore_errors=True)
        raise
    return NewProject(path=target, names=names, files=tuple(files))
