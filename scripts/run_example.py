"""Run the example plugin the way the host will, with the parts that exist today.

Loads the example plugin through its ``plugbox`` entry point, validates its manifest, prints each
job's next fire times, then runs ``example:hello-cron`` in the sandbox's in-process debug mode
(every runtime call checked by the proxies; no OS confinement yet) in ``./workspace``.
Replaced by ``plugbox serve`` once the host lands.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path

from plugbox.sandbox.inprocess import run_in_process
from plugbox.sandbox.request import RunContext, RunRequest
from plugbox.sdk import (
    ENTRY_POINT_GROUP,
    Manifest,
    new_plugin_manager,
    next_fire_times,
    validate_manifest,
)


def load(name: str) -> Manifest:
    (entry,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    manager = new_plugin_manager()
    manager.register(entry.load(), name=entry.name)
    (manifest,) = manager.hook.plugbox_manifest()
    return validate_manifest(manifest.model_dump(mode="json"), source=f"entry point {name!r}")


def main() -> int:
    manifest = load("example")
    now = datetime.now(UTC)
    print(f"plugin {manifest.id} {manifest.version}: {len(manifest.jobs)} jobs")
    for spec in manifest.jobs:
        fires = next_fire_times(spec.schedule, now, n=3, tz=spec.timezone) if spec.schedule else []
        when = ", ".join(f.isoformat(timespec="seconds") for f in fires) or "manual only"
        print(f"  {manifest.id}:{spec.id:<12} {spec.schedule or '-':<14} next: {when}")

    workspace = Path("workspace")
    workspace.mkdir(exist_ok=True)
    spec = manifest.job("hello-cron")
    request = RunRequest(
        handler=spec.handler,
        workspace=str(workspace),
        context=RunContext(
            job_id=spec.id,
            plugin_id=manifest.id,
            plugin_version=manifest.version,
            run_id=uuid.uuid4().hex,
            config=spec.config,
        ),
        permissions=manifest.declared_permissions(spec.id),
    )
    outcome = run_in_process(request)
    print(f"\nran {manifest.id}:{spec.id} in {outcome.enforcement.mode} mode -> {outcome.status}")
    print(json.dumps(outcome.model_dump(mode="json", exclude={"enforcement"}), indent=2))
    log = workspace / ".plugbox" / "example" / "cron.log"
    print(f"\n{log}:\n{log.read_text()}")
    return 0 if outcome.status == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
