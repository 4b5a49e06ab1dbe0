"""The baseline: an honest job of the hostile plugin, so a suite-wide failure shows up as its own."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report, victim


def _temp_file() -> str:
    # TMPDIR is the job's first writable directory: tempfile works without a dir= argument.
    with tempfile.NamedTemporaryFile("w") as handle:
        handle.write("x")
        return os.path.relpath(handle.name)


@job(
    "control",
    schedule="@daily",
    timeout="20s",
    permissions=perms.presets.plugin_workspace("eve"),
)
def control(ctx: JobContext) -> dict[str, Any]:
    ctx.runtime.fs.mkdir(".plugbox/eve", parents=True, exist_ok=True)
    ctx.runtime.fs.write_text(".plugbox/eve/control.txt", f"run {ctx.run_id}\n")
    with open(".plugbox/eve/plain.txt", "w") as handle:  # a plain open inside the grant works
        handle.write("plain\n")
    return report(
        {"uid": os.getuid(), "cwd": os.getcwd(), "run_id": ctx.run_id},
        temp_file=attempt(_temp_file),
        read_victim=attempt(lambda: open(victim("file.txt")).read()),
        write_victim=attempt(lambda: open(victim("file.txt"), "a").write("pwned")),
    )


JOBS = [control]
