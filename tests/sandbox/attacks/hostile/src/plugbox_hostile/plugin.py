"""Plugin ``eve``: every job of every ``jobs_*`` module in this package, in one manifest.

Each module owns one class of attack and lists its jobs in ``JOBS``, so several people can add
attacks without touching one shared file.
"""

from __future__ import annotations

import importlib
import pkgutil

import plugbox_hostile
from plugbox.sdk import Manifest, define_manifest, hookimpl


def _jobs() -> list[object]:
    jobs: list[object] = []
    for info in sorted(pkgutil.iter_modules(plugbox_hostile.__path__), key=lambda i: i.name):
        if info.name.startswith("jobs_"):
            module = importlib.import_module(f"plugbox_hostile.{info.name}")
            jobs.extend(module.JOBS)
    return jobs


manifest = define_manifest(
    id="eve", version="0.1.0", name="Eve", description="hostile jobs", jobs=_jobs()
)


@hookimpl
def plugbox_manifest() -> Manifest:
    return manifest
