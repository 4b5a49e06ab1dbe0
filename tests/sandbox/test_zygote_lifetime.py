"""The zygote lives as long as its runner, whichever thread happened to start it.

The zygote dies with its parent (``PR_SET_PDEATHSIG``), and the kernel's "parent" is the
thread that forked it. A host starts the zygote lazily, from whatever thread runs the first job
(a scheduler worker, an API thread): when that thread ended, the zygote was SIGKILLed and every
run in flight with it (seen as ``plugbox serve`` stopping its workers one by one, where the last
run failed with "exited with status 0 before returning a result" instead of being cancelled).
"""

from __future__ import annotations

import threading
from pathlib import Path

from plugbox.sandbox import Outcome, RunContext, RunRequest, SandboxRunner
from plugbox.sdk import permissions as perms

JOBS_DIR = str(Path(__file__).parent / "jobs")


def request(workspace: Path, func: str, config: dict[str, float] | None = None) -> RunRequest:
    return RunRequest(
        handler=f"plugbox_deadline_jobs:{func}",
        workspace=str(workspace),
        context=RunContext(
            job_id=func, plugin_id="t", plugin_version="0", run_id="", config=config or {}
        ),
        permissions=perms.presets.plugin_workspace("t"),
        python_path=(JOBS_DIR,),
    )


def test_a_run_in_flight_survives_the_end_of_the_thread_that_started_the_zygote(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".plugbox" / "t").mkdir(parents=True)
    first_ran = threading.Event()
    may_end = threading.Event()
    outcomes: dict[str, Outcome] = {}

    def starter() -> None:
        outcomes["first"] = runner.run(request(workspace, "ok"))  # starts the zygote
        first_ran.set()
        may_end.wait(30)

    def napper() -> None:
        outcomes["nap"] = runner.run(request(workspace, "nap", {"seconds": 1.5}))

    runner = SandboxRunner(prewarm=False)  # not started: the first run starts its zygote
    try:
        starting = threading.Thread(target=starter)
        starting.start()
        assert first_ran.wait(30)
        napping = threading.Thread(target=napper)
        napping.start()
        napping.join(0.5)  # the nap is in flight...
        assert napping.is_alive()
        may_end.set()  # ...when the thread that started the zygote ends
        starting.join(30)
        napping.join(30)
    finally:
        runner.close()
    assert outcomes["first"].status == "success", outcomes["first"].error
    assert outcomes["nap"].status == "success", outcomes["nap"].error
    assert outcomes["nap"].result == {"slept": True}
