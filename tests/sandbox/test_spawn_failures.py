"""A spawn that fails or times out is a recorded failure of that run alone.

The fault is injected at the boundary — the zygote stopped (SIGSTOP) or killed (SIGKILL), the spawn
timeout made tiny — and each test proves with a control run that the runner itself still works.
``SandboxRunner.run`` must return an outcome every time, never raise.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner
from plugbox.sandbox import runner as runner_module
from plugbox.sdk import permissions as perms

JOBS_DIR = str(Path(__file__).parent / "jobs")


@pytest.fixture
def runner() -> Iterator[SandboxRunner]:
    # One per test: these tests stop and kill its zygote.
    with SandboxRunner(prewarm=False) as started:
        yield started


def request(workspace: Path, func: str = "ok") -> RunRequest:
    return RunRequest(
        handler=f"plugbox_deadline_jobs:{func}",
        workspace=str(workspace),
        context=RunContext(job_id=func, plugin_id="t", plugin_version="0", run_id=""),
        permissions=perms.presets.plugin_workspace("t"),
        python_path=(JOBS_DIR,),
    )


def zygote(runner: SandboxRunner) -> psutil.Process:
    # This runner's own zygote: a session-wide runner of other tests may be running beside it.
    process = runner._zygote._process
    assert process is not None, "the runner has no zygote"
    found = psutil.Process(process.pid)
    assert found.cmdline()[1] == "-I"  # started isolated
    return found


def run_cgroups() -> set[str]:
    """This process's run cgroups, by name (they carry the owner pid)."""
    found: set[str] = set()
    for path, dirs, _ in os.walk("/sys/fs/cgroup"):
        found.update(os.path.join(path, d) for d in dirs if d.startswith(f"{os.getpid()}-"))
    return found


def wait_until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_spawn_that_times_out_fails_that_run_and_leaves_nothing_behind(
    runner: SandboxRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.run(request(tmp_path)).status == "success"  # control
    runner._cleaner.drain()  # the control run's cgroup is back in the pool
    cgroups_before = run_cgroups()
    process = zygote(runner)
    monkeypatch.setattr(runner_module, "SPAWN_TIMEOUT_S", 0.5)
    process.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        outcome = runner.run(request(tmp_path))
        took = time.monotonic() - began
    finally:
        process.send_signal(signal.SIGCONT)
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.type == "SandboxError"
    assert "took longer than 0.5 s to prepare" in outcome.error.message
    assert "stopped" in outcome.error.message  # why, as far as the parent can tell
    assert took < 2.0
    # The zygote answers the abandoned spawn once it runs again; that late child is killed.
    assert wait_until(lambda: not process.children()), process.children()
    runner._cleaner.drain()
    assert run_cgroups() <= cgroups_before  # its cgroup was released, not leaked
    assert runner.run(request(tmp_path)).status == "success"  # and the runner carries on


def test_a_zygote_that_died_fails_the_runs_it_had_and_is_started_again(
    runner: SandboxRunner, tmp_path: Path
) -> None:
    assert runner.run(request(tmp_path)).status == "success"
    process = zygote(runner)
    process.kill()
    process.wait(5)
    outcomes = [runner.run(request(tmp_path)) for _ in range(2)]
    # The first run after the death may already find the new zygote; none may raise, and the
    # runner must be working again by the second.
    assert all(o.status in ("success", "failed") for o in outcomes)
    assert outcomes[-1].status == "success", outcomes[-1].error
    assert zygote(runner).pid != process.pid


def test_run_never_raises_even_when_the_sandbox_itself_breaks(
    runner: SandboxRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("injected fault while preparing the spawn")

    monkeypatch.setattr(runner_module, "spawn_spec", broken)
    outcome = runner.run(request(tmp_path, "ok"))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.type == "SandboxError"
    assert "RuntimeError: injected fault while preparing the spawn" in outcome.error.message
    monkeypatch.undo()
    assert runner.run(request(tmp_path)).status == "success"  # control
