from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugbox.sandbox import Outcome, RunContext, RunRequest, SandboxRunner
from plugbox.sdk import permissions as perms

JOBS_DIR = str(Path(__file__).parent / "jobs")
SECRET = "TOP-SECRET-VALUE"

Run = Callable[..., Outcome]


@pytest.fixture(scope="session")
def runner() -> Iterator[SandboxRunner]:
    with SandboxRunner() as started:
        yield started


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / ".plugbox" / "t").mkdir(parents=True)
    (root / ".env").write_text(f"TOKEN={SECRET}\n")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text(SECRET)
    return root


@pytest.fixture
def run(runner: SandboxRunner, workspace: Path) -> Run:
    def go(
        func: str,
        *,
        permissions: perms.Permissions | None = None,
        config: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        grants: tuple[perms.Permissions, ...] = (),
    ) -> Outcome:
        request = RunRequest(
            handler=f"plugbox_attack_jobs:{func}",
            workspace=str(workspace),
            context=RunContext(
                job_id=func, plugin_id="t", plugin_version="0", run_id="", config=config or {}
            ),
            permissions=permissions
            if permissions is not None
            else perms.presets.plugin_workspace("t"),
            grants=grants,
            environment=environment or {},
            python_path=(JOBS_DIR,),
        )
        return runner.run(request)

    return go
