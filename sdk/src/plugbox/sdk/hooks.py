"""The pluggy hooks a plugin implements, and the markers to implement them with.

Plugins register through the ``plugbox`` entry-point group; the host loads them only inside a
confined child, so these hooks must return data (a manifest), never start work.
"""

from __future__ import annotations

import pluggy

from plugbox.sdk.manifest import Manifest

PROJECT_NAME = "plugbox"
ENTRY_POINT_GROUP = "plugbox"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class PlugboxSpec:
    """Hooks a plugbox plugin may implement."""

    @hookspec
    def plugbox_manifest(self) -> Manifest:  # type: ignore[empty-body]
        """Return this plugin's :class:`~plugbox.sdk.Manifest` (built with ``define_manifest``).

        Called once per discovery, in a confined child with no network and no writes: build the
        manifest and return it; do not open files, sockets or threads here.
        """


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows plugbox's hookspecs (nothing registered yet)."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(PlugboxSpec)
    return manager
