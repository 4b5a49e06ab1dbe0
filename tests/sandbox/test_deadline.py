"""The deadline never waits for the network: broker requests run off the watch loop.

A job with a 2 s timeout talks to a local server that trickles its body or never answers; the
run must end as ``timeout`` close to 2 s (it used to run 30-42 s), and the runner must serve the
next run at once. Each test's server counts the requests it got: the proof the job really asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugbox.sandbox import Outcome, RunContext, RunRequest, SandboxRunner
from plugbox.sandbox.net_request import MAX_RESPONSE_BODY
from plugbox.sdk import permissions as perms

from .slow_http import slow_server

JOBS_DIR = str(Path(__file__).parent / "jobs")
TIMEOUT_S = 2.0
#: The kill comes at the timeout; this leaves room for a loaded 2-core machine, not for a wait.
SLACK_S = 2.0


@pytest.fixture(scope="module")
def runner() -> Iterator[SandboxRunner]:
    with SandboxRunner(prewarm=False) as started:
        yield started


def request(workspace: Path, func: str, config: dict[str, Any]) -> RunRequest:
    allowed = perms.combine(
        perms.presets.plugin_workspace("t"),
        perms.presets.http_hosts("127.0.0.1"),  # loopback needs an explicit allow
        perms.Permissions(quotas=perms.Quotas(timeout_ms=int(TIMEOUT_S * 1000))),
    )
    return RunRequest(
        handler=f"plugbox_deadline_jobs:{func}",
        workspace=str(workspace),
        context=RunContext(
            job_id=func, plugin_id="t", plugin_version="0", run_id="", config=config
        ),
        permissions=allowed,
        python_path=(JOBS_DIR,),
    )


def timed(runner: SandboxRunner, req: RunRequest, **kwargs: Any) -> tuple[Outcome, float]:
    began = time.monotonic()
    outcome = runner.run(req, **kwargs)
    return outcome, time.monotonic() - began


def assert_responsive(runner: SandboxRunner, workspace: Path) -> None:
    outcome, took = timed(runner, request(workspace, "ok", {}))
    assert outcome.status == "success", outcome.error
    assert took < 2.0, f"the next run took {took:.1f} s"


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_a_slow_server_cannot_hold_a_run_past_its_timeout(
    runner: SandboxRunner, tmp_path: Path, mode: str
) -> None:
    with slow_server(mode, every=0.2) as server:
        req = request(tmp_path, "net_get", {"url": server.url(), "timeout": 60})
        outcome, took = timed(runner, req)
        assert server.hits == 1  # the job's request reached the server
    assert outcome.status == "timeout", outcome.error
    assert outcome.kill_reason == "timeout"
    assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S, f"the {TIMEOUT_S} s run took {took:.1f} s"
    assert_responsive(runner, tmp_path)


def test_a_request_is_bounded_by_its_own_timeout_and_the_job_is_told(
    runner: SandboxRunner, tmp_path: Path
) -> None:
    with slow_server("trickle", every=0.1) as server:
        req = request(tmp_path, "net_get", {"url": server.url(), "timeout": 0.5})
        outcome, took = timed(runner, req)
    assert outcome.status == "success", outcome.error
    result = outcome.result
    assert isinstance(result, dict)
    # The body trickles a byte every 0.1 s: only the clock, not a socket timeout, stops it.
    assert "TimeLimitError" in result["error"] and "timeout" in result["error"]
    assert result["s"] < 1.5
    assert took < TIMEOUT_S


def test_cancel_is_enforced_while_a_request_is_in_flight(
    runner: SandboxRunner, tmp_path: Path
) -> None:
    cancel = threading.Event()
    with slow_server("silent") as server:
        req = request(tmp_path, "net_get", {"url": server.url(), "timeout": 60})
        threading.Timer(0.5, cancel.set).start()
        outcome, took = timed(runner, req, cancel=cancel)
        assert server.hits == 1
    assert outcome.kill_reason == "cancelled"
    assert took < 0.5 + SLACK_S


def test_a_response_over_the_size_cap_is_refused_with_the_limit(
    runner: SandboxRunner, tmp_path: Path
) -> None:
    with slow_server("big", size=MAX_RESPONSE_BODY + 1) as server:
        req = request(tmp_path, "net_get", {"url": server.url(), "timeout": 10})
        outcome, _ = timed(runner, req)
    assert outcome.status == "success", outcome.error
    assert isinstance(outcome.result, dict)
    assert f"larger than the {MAX_RESPONSE_BODY}-byte limit" in outcome.result["error"]
    with slow_server("big", size=1000) as server:  # control: a small body comes through
        req = request(tmp_path, "net_get", {"url": server.url(), "timeout": 10})
        outcome, _ = timed(runner, req)
    assert outcome.result == {"status": 200, "bytes": 1000}
