"""Learn mode end to end: a job run with ``learn=True`` makes calls its declared set refuses; the
record yields a permission set that, used for a normal run, lets the job succeed with no denial."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbox.sandbox import Outcome, RunContext, RunRequest, SandboxRunner, run_in_process
from plugbox.sandbox.net_request import NetRequest
from plugbox.sdk import HttpResponse
from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions.learn import minimal_permissions, missing_calls, unused_rules

JOBS_DIR = str(Path(__file__).parent / "jobs")
DECLARED = perms.Permissions(
    fs=[perms.FsPermissions(mode="readWrite", allow=("/reports/", "/old-cache/"))],
    env=perms.EnvPermissions(allow=("UNUSED_NAME",)),
)


def _answer(request: NetRequest) -> HttpResponse:
    return HttpResponse(200, {}, b"[]", request.url)


def _request(workspace: Path, permissions: perms.Permissions, *, learn: bool) -> RunRequest:
    return RunRequest(
        handler="plugbox_access_jobs:busy",
        workspace=str(workspace),
        context=RunContext(job_id="busy", plugin_id="t", plugin_version="0", run_id=""),
        permissions=permissions,
        environment={"API_TOKEN": "secret", "OTHER": "x"},
        python_path=(JOBS_DIR,),
        learn=learn,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "settings.toml").write_text("mode = 'fast'\n")
    return root


@pytest.mark.parametrize("mode", ["sandbox", "in-process"])
def test_what_learn_mode_proposes_is_exactly_enough(
    mode: str, runner: SandboxRunner, workspace: Path
) -> None:
    def run(request: RunRequest) -> Outcome:
        if mode == "sandbox":
            return runner.run(request, responder=_answer)
        return run_in_process(request, responder=_answer)

    refused = run(_request(workspace, DECLARED, learn=False))
    assert refused.status == "failed"
    assert refused.error is not None and refused.error.type == "PermissionDenied"

    learned = run(_request(workspace, DECLARED, learn=True))
    assert learned.status == "success", learned.error
    assert learned.result == {
        "settings": "mode = 'fast'\n",
        "listed": ["daily", "index.txt"],
        "token": "secret",
        "status": 200,
        "echoed": "hello *",
    }
    proposal = minimal_permissions(learned.accesses)
    assert proposal.fs == (
        perms.FsPermissions(mode="readWrite", allow=("/reports/daily/", "/reports/index.txt")),
        perms.FsPermissions(mode="read", allow=("/reports/", "/settings.toml")),
    )
    assert proposal.net.allow_hosts == ("api.example.com:443",)
    assert proposal.env.allow == ("API_TOKEN",)
    assert proposal.shell.allow == ("echo 'hello [*]'",)
    assert proposal.capabilities == ("shell",)
    assert [(m.operation, m.target) for m in missing_calls(learned.accesses)] == [
        ("fs.read", "settings.toml"),
        ("env.read", "API_TOKEN"),
        ("net.connect", "api.example.com:443"),
        ("shell.run", "echo 'hello *'"),
    ]
    assert unused_rules(DECLARED, learned.accesses) == (
        "fs[0].allow[1] '/old-cache/'",
        "env.allow 'UNUSED_NAME'",
    )

    rerun = run(_request(workspace, proposal, learn=False))
    assert rerun.status == "success", rerun.error
    assert rerun.denials == ()


@pytest.mark.parametrize(
    ("func", "config", "operation", "rule"),
    [
        ("proxy_read", {"path": "../outside"}, "fs.read", "path check"),
        ("net_get", {"url": "http://127.0.0.1:9/"}, "net.connect", "default deny"),
        ("net_get", {"url": "http://2130706433:9/"}, "net.connect", "default deny"),
        ("net_get", {"url": "http://1.2.3.4.5/"}, "net.connect", "host check"),
    ],
)
def test_learn_mode_still_refuses_malformed_calls_and_private_addresses(
    func: str,
    config: dict[str, str],
    operation: str,
    rule: str,
    runner: SandboxRunner,
    workspace: Path,
) -> None:
    request = RunRequest(
        handler=f"plugbox_attack_jobs:{func}",
        workspace=str(workspace),
        context=RunContext(job_id="x", plugin_id="t", plugin_version="0", run_id="", config=config),
        python_path=(JOBS_DIR,),
        learn=True,
    )
    outcome = runner.run(request)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.type == "PermissionDenied"
    assert (operation, rule) in [(d.operation, d.rule) for d in outcome.denials]
