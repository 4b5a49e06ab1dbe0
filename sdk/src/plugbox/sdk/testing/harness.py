"""The test harness: run a job as the host would, in a workspace the test owns.

A run is built by :func:`plugbox.sandbox.request.request_for_job`, the function the host calls,
so the job gets the same permissions, quotas and context it will get in production; the test
chooses only what an operator or the scheduler would: config, environment, grants, the clock
facts. By default it runs in the real sandbox (a confined child process); ``in_process=True`` is
the debug mode, where a debugger can step through the job and only the proxies check calls.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from plugbox.sdk import Trigger
from plugbox.sdk.jobs import JobDeclaration, define_manifest, get_job
from plugbox.sdk.manifest import Manifest
from plugbox.sdk.permissions import Decider, Permissions, as_permissions, effective_policy
from plugbox.sdk.testing._sandbox import (
    LearningDecider,
    NetBroker,
    RunRequest,
    SandboxRunner,
    request_for_job,
    run_in_process,
)
from plugbox.sdk.testing.code_path import code_path
from plugbox.sdk.testing.fake_http import FakeHttp
from plugbox.sdk.testing.learning import LearnReport, learn_report
from plugbox.sdk.testing.result import RunResult

#: The plugin a job runs as when the test gives no ``manifest=``.
TEST_PLUGIN_ID = "test"
TEST_PLUGIN_VERSION = "0.0.0"

JobRef = Callable[..., Any] | JobDeclaration | str
PermissionsLike = Permissions | Mapping[str, Any]


class Harness:
    """Runs jobs in ``workspace`` (created if missing) and returns :class:`RunResult` objects.

    ``runner`` is a started or unstarted :class:`SandboxRunner` to share; without one the
    harness starts its own on the first sandboxed run and closes it in :meth:`close`.
    ``in_process`` makes debug mode the default for :meth:`run`. ``http`` holds the fake
    responses; no request reaches the real network unless it says ``passthrough``.
    """

    def __init__(
        self,
        workspace: str | os.PathLike[str],
        *,
        runner: SandboxRunner | None = None,
        in_process: bool = False,
        http: FakeHttp | None = None,
    ) -> None:
        self.workspace = Path(workspace).absolute()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.in_process = in_process
        self.http = http if http is not None else FakeHttp()
        self._runner = runner
        self._own_runner: SandboxRunner | None = None

    def run(
        self,
        job: JobRef,
        *,
        manifest: Manifest | None = None,
        config: Mapping[str, JsonValue] | None = None,
        secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        grants: Sequence[PermissionsLike] = (),
        permissions: PermissionsLike | None = None,
        scheduled_at: datetime | None = None,
        run_count: int = 1,
        attempt: int = 1,
        trigger: Trigger = "manual",
        in_process: bool | None = None,
    ) -> RunResult:
        """Run ``job`` once and return what happened (job faults never raise here).

        ``job`` is a function decorated with ``@job`` (or its declaration, or a job id of
        ``manifest``). ``manifest`` adds the plugin-level permissions and the plugin's id and
        version, as on the host; without it the job runs as plugin ``test`` 0.0.0.
        ``config`` is what an operator would set in plugbox.toml: it overlays the job's config
        defaults, is checked against the job's config schema, and is the only source of values
        for permission rules bound to config (``allow_hosts_from``). ``secrets`` are the
        operator's secret values by name (``ctx.secrets.get``), redacted from the result as on
        the host. A job whose config or secrets the host would refuse raises
        :class:`~plugbox.sdk.NotConfiguredError`. ``env`` is the whole environment the
        job's ``env.allow`` picks from (the test's own environment never leaks in). ``grants``
        narrow like an operator's grants; ``permissions`` replaces the declared set.
        ``in_process`` (None: the harness default) picks debug mode for this run.
        """
        request = self.request(
            job,
            manifest=manifest,
            config=config,
            secrets=secrets,
            env=env,
            grants=grants,
            permissions=permissions,
            scheduled_at=scheduled_at,
            run_count=run_count,
            attempt=attempt,
            trigger=trigger,
        )
        return self.run_request(request, in_process=in_process)

    def request(
        self,
        job: JobRef,
        *,
        manifest: Manifest | None = None,
        config: Mapping[str, JsonValue] | None = None,
        secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        grants: Sequence[PermissionsLike] = (),
        permissions: PermissionsLike | None = None,
        scheduled_at: datetime | None = None,
        run_count: int = 1,
        attempt: int = 1,
        trigger: Trigger = "manual",
    ) -> RunRequest:
        """The :class:`RunRequest` :meth:`run` would run, built exactly as the host builds one."""
        manifest, job_id = _job_of(job, manifest)
        when = datetime.now(UTC) if scheduled_at is None else scheduled_at
        if when.tzinfo is None:
            raise ValueError(
                f"scheduled_at={when!r} has no time zone; pass an aware datetime such as "
                "datetime(2025, 1, 1, 3, 0, tzinfo=UTC)"
            )
        spec = manifest.job(job_id)
        return request_for_job(
            manifest,
            job_id,
            workspace=str(self.workspace),
            run_id=f"test-{uuid.uuid4().hex}",
            scheduled_at=when,
            run_count=run_count,
            attempt=attempt,
            trigger=trigger,
            config=config,
            permissions=None if permissions is None else as_permissions(permissions),
            grants=[as_permissions(grant) for grant in grants],
            environment=env,
            secrets=secrets,
            python_path=code_path(spec.handler, self.workspace),
        )

    def run_request(self, request: RunRequest, *, in_process: bool | None = None) -> RunResult:
        """Run a prepared request with this harness's fakes, in the sandbox or in-process."""
        debug = self.in_process if in_process is None else in_process
        network = None
        if self.http.passthrough:
            decider: Decider = effective_policy(request.permissions, *request.grants)
            if request.learn:
                decider = LearningDecider(decider)
            network = NetBroker(decider).perform
        responder = self.http.responder(network)
        if debug:
            saved = list(sys.path)
            try:
                outcome = run_in_process(request, responder=responder)
            finally:
                sys.path[:] = saved  # the run put the job's code path in front
        else:
            outcome = self._sandbox().run(request, responder=responder)
        return RunResult(outcome, request)

    def learn(
        self,
        job: JobRef,
        *,
        manifest: Manifest | None = None,
        config: Mapping[str, JsonValue] | None = None,
        secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        scheduled_at: datetime | None = None,
        run_count: int = 1,
        attempt: int = 1,
        trigger: Trigger = "manual",
        in_process: bool | None = None,
    ) -> LearnReport:
        """Run ``job`` once in learn mode and report the smallest permission set it needs.

        Every well-formed ``ctx.runtime`` call goes through (inside the sandbox's kernel layers)
        and is recorded with the verdict the declared permissions would give; the report lists
        what is missing and what is never used. ``env`` is all the job can see: pass the
        variables it reads. See :mod:`plugbox.sdk.testing.learning`.
        """
        request = self.request(
            job,
            manifest=manifest,
            config=config,
            secrets=secrets,
            env=env,
            scheduled_at=scheduled_at,
            run_count=run_count,
            attempt=attempt,
            trigger=trigger,
        )
        run = self.run_request(request.model_copy(update={"learn": True}), in_process=in_process)
        return learn_report(request, run)

    def _sandbox(self) -> SandboxRunner:
        if self._runner is None:
            self._runner = self._own_runner = SandboxRunner()
        return self._runner

    def close(self) -> None:
        """Stop the runner this harness started (a shared runner is left to its owner)."""
        if self._own_runner is not None:
            self._own_runner.close()
            self._own_runner = None
            self._runner = None

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _job_of(job: JobRef, manifest: Manifest | None) -> tuple[Manifest, str]:
    """The manifest to run ``job`` from, and its id there."""
    if isinstance(job, str):
        if manifest is None:
            raise TypeError(f"a job id ({job!r}) needs manifest=; or pass the job function")
        return manifest, job
    declaration = job if isinstance(job, JobDeclaration) else get_job(job)
    if manifest is None:
        built = define_manifest(
            id=TEST_PLUGIN_ID, version=TEST_PLUGIN_VERSION, name="Test", jobs=[declaration]
        )
        return built, declaration.id
    handler = manifest.job(declaration.id).handler
    if handler != declaration.reference:
        raise ValueError(
            f"plugin {manifest.id!r} declares job {declaration.id!r} with handler {handler!r}, "
            f"not {declaration.reference!r}; pass the job the manifest lists"
        )
    return manifest, declaration.id
