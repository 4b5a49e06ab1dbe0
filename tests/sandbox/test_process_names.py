"""An operator's ``ps`` tells the sandbox's processes apart from each other and from the host."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner

JOBS_DIR = str(Path(__file__).parent / "jobs")


def _names_of_live_descendants() -> set[str]:
    """Names of this process's descendants that are still there when asked.

    ``children()`` lists a snapshot; a process in it may exit (the run child that just answered)
    before its ``name()`` is read. Skipping it is sound: the names that matter belong to processes
    that stay alive, so they are found on this pass or the next.
    """
    names = set()
    for child in psutil.Process().children(recursive=True):
        try:
            names.add(child.name())
        except psutil.NoSuchProcess:
            continue
    return names


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
            names = _names_of_live_descendants()
            time.sleep(0.01)
    assert {"plugbox-zygote", "plugbox-run"} <= names
