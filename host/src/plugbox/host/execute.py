"""Running one job and recording it: the step the CLI's ``jobs run`` and the scheduler share.

A run is recorded as ``running`` before the child starts, so a host killed mid-run leaves a row the
next start turns into ``interrupted``; the outcome then replaces it. Nothing a job does can skip
the second write: the runner returns an outcome for every fault.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plugbox.host.discovery import LoadedPlugin
from plugbox.host.store import RunRecord, RunStore
from plugbox.sandbox import ErrorInfo, Outcome, SandboxRunner
from plugbox.sandbox.outcome import MAX_MESSAGE_CHARS, clip
from plugbox.sandbox.request import Locate, request_for_job
from plugbox.sdk import NotConfiguredError, Problem
from plugbox.sdk.permissions import Permissions, Quotas


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What to run and as which run: the facts the scheduler or the CLI decided."""

    plugin: LoadedPlugin
    job_id: str
    trigger: str = "manual"
    attempt: int = 1
    first_run_id: str | None = None
    scheduled_at: datetime | None = None
    run_count: int = 1
    requested_by: str | None = None  #: who asked for a manual run (an API token's name)
    lease_epoch: int = 0  #: serve's lease on the run (the job's fencing token carries it)

    @property
    def key(self) -> str:
        return f"{self.plugin.manifest.id}:{self.job_id}"


def new_run_id() -> str:
    return uuid.uuid4().hex


def execute(
    plan: RunPlan,
    *,
    runner: SandboxRunner,
    store: RunStore,
    workspace: str,
    grants: tuple[Permissions, ...] = (),
    quotas: Quotas | None = None,
    environment: Mapping[str, str] | None = None,
    host_id: str | None = None,
    run_id: str | None = None,
    cancel: threading.Event | None = None,
    python_path: tuple[str, ...] = (),
    queued: bool = False,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    unset: tuple[Problem, ...] = (),
    locate: Locate | None = None,
    write: Callable[[RunRecord], None] | None = None,
) -> RunRecord:
    """Run ``plan`` in the sandbox and return its final, stored record.

    ``quotas`` is the operator's per-job override (see ``request_for_job``). ``queued``: a
    ``queued`` record of ``run_id`` exists (a trigger through the API answered with it), and
    the run replaces it instead of adding a second one. ``config`` and ``secrets`` are the
    operator's values, located by ``locate``; ``unset`` are secrets that could not be read. A
    job that cannot run as configured is recorded ``failed`` (error ``NotConfigured``, naming every
    key to set) without starting. ``write``: the run is recorded
    ``running`` already (``plugbox serve`` claimed it) and its outcome is stored through this
    call, which refuses it when the claim was lost (:mod:`plugbox.host.store.queue`).
    """
    run_id = run_id or new_run_id()
    now = datetime.now(UTC)
    scheduled_at = plan.scheduled_at or now
    common: dict[str, Any] = {
        "run_id": run_id,
        "job": plan.key,
        "trigger": plan.trigger,
        "attempt": plan.attempt,
        "first_run_id": plan.first_run_id or run_id,
        "scheduled_at": scheduled_at,
        "host_id": host_id,
        "requested_by": plan.requested_by,
    }
    # Built before anything is recorded: an unknown job or a bad trigger fails here, unrecorded.
    try:
        request = request_for_job(
            plan.plugin.manifest,
            plan.job_id,
            workspace=workspace,
            run_id=run_id,
            scheduled_at=scheduled_at,
            run_count=plan.run_count,
            attempt=plan.attempt,
            trigger=plan.trigger,
            grants=grants,
            environment=os.environ if environment is None else environment,
            python_path=python_path,
            quotas=quotas,
            config=config,
            secrets=secrets,
            locate=locate,
            lease_epoch=plan.lease_epoch,
        )
        if unset:
            raise NotConfiguredError(plan.key, unset)
    except NotConfiguredError as err:
        # Every problem in one record; for a secret, the host's reason (which variable or
        # file) replaces the request's plain "not provided".
        located = {problem.location for problem in unset}
        problems = [p for p in err.problems if p.location not in located] + list(unset)
        record = not_configured(common, now, NotConfiguredError(plan.key, problems))
        if write is not None:  # claimed: recorded running, so the claim's write ends it
            write(record)
        else:
            (store.update if queued else store.add)(record)
        return record
    running = RunRecord(status="running", started_at=now, **common)
    if write is None:  # else the claim recorded it running
        (store.update if queued else store.add)(running)
    try:
        record = record_from_outcome(runner.run(request, cancel=cancel), common)
    except Exception as exc:  # the runner never raises; a record that cannot be built might
        record = host_failure(common, now, exc)
    (store.update if write is None else write)(record)
    return record


def not_configured(common: Mapping[str, Any], now: datetime, err: NotConfiguredError) -> RunRecord:
    """The record of a run the host did not start: what the operator must set, key by key."""
    return RunRecord(
        status="failed",
        started_at=now,
        finished_at=now,
        duration_ms=0,
        error=ErrorInfo(type="NotConfigured", message=clip(str(err), MAX_MESSAGE_CHARS)),
        **common,
    )


def host_failure(common: Mapping[str, Any], started: datetime, exc: Exception) -> RunRecord:
    """The record of a run the host itself failed to carry out or record (``HostError``)."""
    now = datetime.now(UTC)
    text = f"the host failed while running the job: {type(exc).__name__}: {exc}"
    return RunRecord(
        status="failed",
        started_at=started,
        finished_at=now,
        duration_ms=max(0, int((now - started).total_seconds() * 1000)),
        error=ErrorInfo(type="HostError", message=clip(text, MAX_MESSAGE_CHARS)),
        **common,
    )


def record_from_outcome(outcome: Outcome, common: Mapping[str, Any]) -> RunRecord:
    """The stored form of a runner outcome."""
    cancelled = outcome.kill_reason == "cancelled"
    return RunRecord(
        status="cancelled" if cancelled else outcome.status,
        reason="cancelled: the host shut down or a newer run replaced it" if cancelled else None,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        duration_ms=outcome.duration_ms,
        result=outcome.result,
        error=outcome.error,
        kill_reason=outcome.kill_reason,
        peak_memory_mb=outcome.peak_memory_mb,
        cpu_ms=outcome.cpu_ms,
        events=outcome.events,
        events_truncated=outcome.events_truncated,
        log=outcome.log,
        log_truncated=outcome.log_truncated,
        output=outcome.output,
        output_truncated=outcome.output_truncated,
        enforcement=outcome.enforcement.model_dump(mode="json"),
        denials=outcome.denials,
        **common,
    )
