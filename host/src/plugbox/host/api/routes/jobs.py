"""``/jobs``: listing, one job in detail, statistics, and trigger / pause / resume.

Job ids in paths are ``PLUGIN:JOB``; ``example%3Ahello-cron`` works too (the server decodes the
path before routing).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from plugbox.host.api.auth import scope
from plugbox.host.api.deps import HostDep, OperationsDep
from plugbox.host.api.errors import responses
from plugbox.host.api.routes.plugins import broken
from plugbox.host.catalog import (
    JobDetail,
    JobList,
    JobState,
    JobStatsList,
    job_detail,
    job_list,
)
from plugbox.host.services import Host, UnknownJobError
from plugbox.host.store import PauseState, RunRecord
from plugbox.host.tokens import TokenInfo

router = APIRouter(tags=["jobs"], responses=responses(401, 403))
Reader = Annotated[TokenInfo, Depends(scope("read"))]
Trigger = Annotated[TokenInfo, Depends(scope("trigger"))]
Admin = Annotated[TokenInfo, Depends(scope("admin"))]
JobId = Annotated[
    str,
    Path(
        description="PLUGIN:JOB; the colon may be sent percent-encoded (%3A)",
        examples=["example:hello-cron"],
    ),
]
#: ``?wait=true`` waits at most this long unless ``timeout`` says less.
MAX_WAIT_S = 300.0


def known(host: Host, job_id: str) -> str:
    """``job_id`` if a loaded plugin provides it; JOB_NOT_FOUND or PLUGIN_BROKEN otherwise."""
    try:
        host.job(job_id)
    except UnknownJobError:
        problem = broken(host, job_id.partition(":")[0])
        if problem is not None:
            raise problem from None
        raise
    return job_id


@router.get("/jobs", operation_id="list_jobs", responses=responses(422))
def list_jobs(
    host: HostDep,
    _: Reader,
    plugin: str | None = None,
    tag: str | None = None,
    state: JobState | None = None,
) -> JobList:
    """Every job with its state, schedule in words, next fire, last run and success rate."""
    return job_list(host, plugin=plugin, tag=tag, state=state)


@router.get("/jobs/stats", operation_id="job_stats")
def job_stats(host: HostDep, _: Reader) -> JobStatsList:
    """Per job with stored runs: counts by status, success rate, p50/p95 duration, last run."""
    return JobStatsList(jobs=tuple(host.store.stats().values()))


@router.get("/jobs/{job_id}", operation_id="get_job", responses=responses(404, 409))
def get_job(job_id: JobId, host: HostDep, _: Reader) -> JobDetail:
    """One job: schedule in words, time zone, next 5 fires, last run, success rate, pause state."""
    return job_detail(host, known(host, job_id))


@router.post(
    "/jobs/{job_id}/trigger",
    operation_id="trigger_job",
    status_code=202,
    responses={
        **responses(404, 409, 422),
        200: {"model": RunRecord, "description": "?wait=true and the run ended in time"},
        202: {
            "description": "queued (or, with ?wait=true, still active when the wait ended)",
            "links": {
                "GetRun": {
                    "operationId": "get_run",
                    "parameters": {"run_id": "$response.body#/run_id"},
                },
                "CancelRun": {
                    "operationId": "cancel_run",
                    "parameters": {"run_id": "$response.body#/run_id"},
                },
            },
        },
    },
)
def trigger_job(
    job_id: JobId,
    host: HostDep,
    operations: OperationsDep,
    token: Trigger,
    response: Response,
    wait: bool = False,
    timeout: Annotated[float, Query(gt=0, le=MAX_WAIT_S, description="seconds")] = 60.0,
) -> RunRecord:
    """Run the job now, as `plugbox jobs run` does, recorded as trigger manual by this token.

    Answers 202 with the queued run at once; with ``wait=true``, 200 with the finished run if
    it ends within ``timeout`` seconds, else 202 with the run as it is then.
    """
    record = operations.trigger(known(host, job_id), requested_by=token.name)
    if wait:
        record = operations.wait(record.run_id, timeout)
        if record.status not in ("queued", "running"):
            response.status_code = 200
    return record


@router.post("/jobs/{job_id}/pause", operation_id="pause_job", responses=responses(404, 409))
def pause_job(job_id: JobId, host: HostDep, operations: OperationsDep, token: Admin) -> PauseState:
    """Stop the job's schedule until resumed (kept in the store: survives restarts)."""
    return operations.set_paused(known(host, job_id), True, by=token.name)


@router.post("/jobs/{job_id}/resume", operation_id="resume_job", responses=responses(404, 409))
def resume_job(job_id: JobId, host: HostDep, operations: OperationsDep, token: Admin) -> PauseState:
    """Let a paused job fire again from now on (missed fires are not replayed)."""
    return operations.set_paused(known(host, job_id), False, by=token.name)
