"""The zygote forks run children without CPython's Python-level fork hooks (zygote_fork.py).

Each test runs a real job through the SandboxRunner and checks what those hooks would otherwise
have repaired: the ``random`` sequence (reseeded: no two runs may share one), threads and
logging (usable in the child).
"""

from __future__ import annotations

from pathlib import Path

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner
from plugbox.sdk import permissions as perms

JOBS_DIR = str(Path(__file__).parent / "jobs")


def _run(runner: SandboxRunner, workspace: Path) -> dict[str, object]:
    outcome = runner.run(
        RunRequest(
            handler="plugbox_fork_jobs:interpreter_state",
            workspace=str(workspace),
            context=RunContext(job_id="fork", plugin_id="t", plugin_version="0", run_id=""),
            permissions=perms.presets.plugin_workspace("t"),
            python_path=(JOBS_DIR,),
        )
    )
    assert outcome.status == "success", outcome.error
    assert isinstance(outcome.result, dict)
    return outcome.result


def test_each_run_child_gets_its_own_random_sequence(runner: SandboxRunner, tmp_path: Path) -> None:
    draws = [_run(runner, tmp_path)["random"] for _ in range(5)]
    assert len(set(draws)) == 5, f"runs shared a random sequence: {draws}"


def test_threads_and_logging_work_in_a_run_child(runner: SandboxRunner, tmp_path: Path) -> None:
    state = _run(runner, tmp_path)
    assert state["main_thread_is_current"] is True
    assert state["thread_ran"] is True
    assert state["threads_now"] == 1  # the worker ended and was accounted for
