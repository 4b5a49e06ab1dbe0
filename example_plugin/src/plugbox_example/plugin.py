"""Entry point module (``[project.entry-points.plugbox] example = "plugbox_example.plugin"``)."""

from __future__ import annotations

from plugbox.sdk import Manifest, define_manifest, hookimpl
from plugbox_example import __version__
from plugbox_example.jobs import cleanup, hello, rate_limit

manifest = define_manifest(
    id="example",
    version=__version__,
    name="Example",
    description="A cron hello, a cache cleanup and an API check, each with its own permissions",
    jobs=[hello, cleanup, rate_limit],
)


@hookimpl
def plugbox_manifest() -> Manifest:
    return manifest
