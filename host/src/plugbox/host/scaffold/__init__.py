"""``plugbox new``: scaffold a plugin project that builds, installs and passes its own tests.

The files are package data under ``templates/`` (``*.tmpl``, rendered with :class:`string.Template`),
so they read like the files they become; :mod:`plugbox.host.scaffold.project` checks the name and
writes them.
"""

from plugbox.host.scaffold.project import (
    MAX_NAME_LENGTH,
    NewProject,
    PluginNames,
    ScaffoldError,
    create_project,
    plugin_names,
    render_project,
    suggest_name,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "NewProject",
    "PluginNames",
    "ScaffoldError",
    "create_project",
    "plugin_names",
    "render_project",
    "suggest_name",
]
