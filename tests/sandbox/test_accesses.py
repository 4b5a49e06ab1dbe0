"""The access record (what a run asked for, and each verdict) and the fake-HTTP responder, through
the runner in both modes: a confined child and the in-process debug mode."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbox.sandbox import Outcome, RunContext, RunRequest, SandboxRunner, run_in_process
from plugbox.sandbox.net_request import NetRequest
from plugbox.sdk import HttpResponse
from plugbox.sdk import permissions as perms

JOBS_DIR = str(Path(__file__).parent / "jobs")

PERMISSIONS = perms.Permissions(
    fs=[perms.FsPermissions(mode="readWrite", allow=("data/**", "data/"), deny=(".env",))],
    env=perms.EnvPermissions(allow=("TOKEN",)),
    net=perms.NetPermissions(allow_hosts=("api.example.com", "cdn.example.com")),
)

Runner = Callable[..., Outcome]


@pytest.fixture(params=["sandbox", "in-process"])
def run_job(request: pytest.FixtureRequest, runner: SandboxRunner, tmp_path: Path) -> Runner:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".env").write_text("SECRET=1\n")

    def go(func: str, *, config: dict[str, Any] | None = None, **kwargs: Any) -> Outcome:
        run_request = RunRequest(
            handler=f"plugbox_access_jobs:{func}",
            workspace=str(workspace),
            context=RunContext(
                job_id=func, plugin_id="t", plugin_version="0", run_id="", config=config or {}
            ),
            permissions=PERMISSIONS,
            environment={"TOKEN": "t0k", "SECRET": "no", "HOME": "/root"},
            python_path=(JOBS_DIR,),
        )
        if request.param == "sandbox":
            return runner.run(run_request, **kwargs)
        return run_in_process(run_request, **kwargs)

    return go


def test_the_record_holds_each_call_and_its_verdict(run_job: Runner) -> None:
    outcome = run_job("mixed_calls")
    assert outcome.status == "success", outcome.error
    seen = {(a.operation, a.target, a.allowed) for a in outcome.accesses}
    assert ("fs.write", "data", True) in seen
    assert ("fs.write", "data/out.txt", True) in seen
    assert ("fs.read", ".env", False) in seen
    assert ("env.read", "TOKEN", True) in seen
    assert ("env.read", "SECRET", False) in seen
    # The run's own setup is not a call the job made: the environment filter decided HOME and
    # the listing decided each entry, yet neither appears.
    assert not any(a.target == "HOME" for a in outcome.accesses)
    assert ("fs.read", "data/other.txt", True) not in seen
    assert ("fs.read", "data", True) in seen  # the listing itself is a call
    denials = {(d.operation, d.target): d.rule for d in outcome.denials}
    assert denials == {
        ("fs.read", ".env"): "fs[0].deny[0] '.env'",
        ("env.read", "SECRET"): "default deny",
    }
    assert outcome.result == {"token": "t0k", "refused": ["fs[0].deny[0] '.env'", "default deny"]}


def _responder(seen: list[NetRequest]) -> Callable[[NetRequest], HttpResponse]:
    def answer(request: NetRequest) -> HttpResponse:
        seen.append(request)
        if request.url.endswith("/moved"):
            return HttpResponse(
                302, {"Location": "https://cdn.example.com/final"}, b"", request.url
            )
        body = json.dumps({"path": request.url}).encode()
        return HttpResponse(200, {"Content-Type": "application/json"}, body, request.url)

    return answer


def test_a_responder_answers_allowed_requests_and_redirects_are_checked_again(
    run_job: Runner,
) -> None:
    seen: list[NetRequest] = []
    outcome = run_job(
        "fetch", config={"url": "https://api.example.com/moved"}, responder=_responder(seen)
    )
    assert outcome.status == "success", outcome.error
    assert outcome.result == {
        "status": 200,
        "body": {"path": "https://cdn.example.com/final"},
        "url": "https://cdn.example.com/final",
    }
    assert [r.url for r in seen] == [
        "https://api.example.com/moved",
        "https://cdn.example.com/final",
    ]
    allowed = {a.target for a in outcome.accesses if a.operation == "net.connect" and a.allowed}
    assert {"api.example.com:443", "cdn.example.com:443"} <= allowed


def test_a_responder_never_sees_a_request_the_policy_refuses(run_job: Runner) -> None:
    seen: list[NetRequest] = []
    outcome = run_job(
        "fetch", config={"url": "https://evil.example.net/x"}, responder=_responder(seen)
    )
    assert outcome.result == {"denied": "evil.example.net:443", "rule": "default deny"}
    assert seen == []
    assert [(d.operation, d.target) for d in outcome.denials] == [
        ("net.connect", "evil.example.net:443")
    ]


def test_a_redirect_to_a_refused_host_is_stopped_before_the_responder(run_job: Runner) -> None:
    seen: list[NetRequest] = []

    def answer(request: NetRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(302, {"Location": "http://169.254.169.254/latest"}, b"", request.url)

    outcome = run_job("fetch", config={"url": "https://api.example.com/a"}, responder=answer)
    assert outcome.result == {"denied": "169.254.169.254:80", "rule": "default deny"}
    assert [r.url for r in seen] == ["https://api.example.com/a"]


def test_a_missing_workspace_is_a_failed_run_that_says_what_to_do(
    runner: SandboxRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    outcome = runner.run(
        RunRequest(
            handler="plugbox_access_jobs:mixed_calls",
            workspace=str(missing),
            context=RunContext(job_id="x", plugin_id="t", plugin_version="0", run_id=""),
            permissions=PERMISSIONS,
            python_path=(JOBS_DIR,),
        )
    )
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert f"the workspace {missing} does not exist" in outcome.error.message
    assert f"mkdir -p {missing}" in outcome.error.message


def test_credentials_do_not_follow_a_redirect_to_another_host(run_job: Runner) -> None:
    seen: list[NetRequest] = []
    outcome = run_job(
        "fetch_with_token",
        config={"url": "https://api.example.com/moved"},
        responder=_responder(seen),
    )
    assert outcome.status == "success", outcome.error
    first, second = seen
    assert first.headers["Authorization"] == "Bearer t0k"
    assert second.url == "https://cdn.example.com/final"
    assert "Authorization" not in second.headers and "Cookie" not in second.headers
    assert second.headers["X-Trace"] == "1"  # other headers still go
