"""An operator's ``ps`` tells the sandbox's processes apart from each other and from the host."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner

JOBS_DIR = str(Path(__file__).parent / "jobs")


def test_the_zygote_and_run_children_are_named(tmp_path: Path) -> None:
    with SandboxRunner() as runner:  # its own runner: a pre-forked child is left waiting
        outcome = runner.run(
            RunRequest(
                handler="plugbox_attack_jobs:ok",
                workspace=str(tmp_path),
                context=RunContext(job_id="ok", plugin_id="t", plugin_version="0", run_id=""),
                python_path=(JOBS_DIR,),
            )
        )
        assert outcome.status == "success", outcome.error
        deadline = time.monotonic() + 10
        names: set[str] = set()
        # the next run's child is forked after this run returns: wait for it to appear
        while "plugbox-run" not in names and time.monotonic() < deadline:
            names = {child.name() for child in psutil.Process().children(recursive=True)}
            time.sleep(0.01)
    assert {"plugbox-zygote", "plugbox-run"} <= names
