"""The child side of plugin discovery: import entry points and collect their manifests as data.

The host never imports plugin code. It lists the ``plugbox`` entry points from distribution
metadata, then runs :func:`collect_manifests` as the handler of a confined run (no network, no
writes, no environment, a timeout). Only here — inside that child — are plugin modules imported
and their ``plugbox_manifest`` hook called; what goes back to the host is JSON, which the host
validates again before trusting it.

Each entry point is loaded on its own, into its own plugin manager, and every failure (an import
that raises, even ``SystemExit``; a missing or misspelt hook; a value that is not a manifest) is
caught and returned as that entry point's error, so one broken plugin never hides another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from typing import Any

from pydantic import BaseModel

from plugbox.sandbox.session import error_from
from plugbox.sdk import ENTRY_POINT_GROUP, JobContext, new_plugin_manager

HANDLER = "plugbox.sandbox.discover:collect_manifests"


def collect_manifests(ctx: JobContext) -> dict[str, Any]:
    """Load each entry point in ``ctx.config["entry_points"]`` and return its manifest or error.

    ``entry_points`` is a list of ``{"name", "value", "dist"}``; the answer is
    ``{"plugins": [{"entry_point", "dist", "manifest": {...}} | {..., "error": {...}}]}``
    in the same order; an error's ``stage`` says whether the ``import`` or the ``hook`` failed.
    """
    entries = ctx.config.get("entry_points")
    if not isinstance(entries, list):
        raise TypeError("config['entry_points'] must be a list of {'name', 'value', 'dist'}")
    return {"plugins": [_collect(entry) for entry in entries]}


def _collect(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise TypeError(f"each entry point must be an object, got {type(entry).__name__}")
    name, value, dist = str(entry["name"]), str(entry["value"]), str(entry.get("dist", ""))
    found: dict[str, Any] = {"entry_point": name, "dist": dist}
    stage = "import"
    # A plugin may raise anything, SystemExit and KeyboardInterrupt included; each is that
    # plugin's failure, never the end of discovery for the others.
    try:
        plugin = EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP).load()
        stage = "hook"
        found["manifest"] = _manifest_of(name, value, plugin)
    except BaseException as exc:
        found["error"] = {**error_from(exc).model_dump(), "stage": stage}
    return found


def _manifest_of(name: str, value: str, plugin: object) -> dict[str, Any]:
    manager = new_plugin_manager()
    manager.register(plugin, name=name)
    # A misspelt hook (``plugbox_manifests``) would otherwise be ignored and look like "no hook".
    manager.check_pending()
    answers = manager.hook.plugbox_manifest()
    if not answers:
        raise LookupError(
            f"entry point {name!r} ({value}) implements no plugbox_manifest hook; "
            "decorate a module-level plugbox_manifest() with @hookimpl"
        )
    answer = answers[0]
    if isinstance(answer, BaseModel):
        data: Any = answer.model_dump(mode="json")
    elif isinstance(answer, Mapping):
        data = dict(answer)
    else:
        raise TypeError(
            f"plugbox_manifest() returned a {type(answer).__name__}; "
            "return the Manifest built with define_manifest"
        )
    # Checked here, per plugin: one unserialisable manifest must not sink the whole answer.
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"the manifest is not JSON-serialisable: {err}") from None
    return data  # type: ignore[no-any-return]
