"""``/jobs``: listing, one job in detail, statistics, and trigger / pause / resume.

Job ids in paths are ``PLUGIN:JOB``; ``example%3Ahello-cron`` works too (the server decodes the
path before routing).
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from plugbox.host.api.auth import scope
from plugbox.host.api.coalesce import Coalesce
from plugbox.host.api.deps import HostDep, OperationsDep
from plugbox.host.api.errors import RequestError, responses
from plugbox.host.api.fresh import Fresh
from plugbox.host.api.routes.plugins import broken
from plugbox.host.catalog import (
    JobDetail,
    JobList,
    JobState,
    JobStatsList,
    UnknownCursorError,
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
#: Jobs per ``GET /jobs`` page unless ``limit`` says otherwise, and the most it may say.
DEFAULT_JOBS_PAGE = 100
MAX_JOBS_PAGE = 1000


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


@router.get("/jobs", operation_id="list_jobs", response_model=JobList, responses=responses(422))
async def list_jobs(
    request: Request,
    host: HostDep,
    _: Reader,
    plugin: str | None = None,
    tag: str | None = None,
    state: JobState | None = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS_PAGE)] = DEFAULT_JOBS_PAGE,
) -> Response:
    """Jobs with their state, schedule in words, next fire, last run and success rate, a page
    at a time in discovery order. An answer may be up to a second old when another process
    (a `plugbox jobs run`) changed what it shows."""
    lists: Fresh = request.app.state.job_lists
    key = (plugin, tag, state, cursor, limit)
    body = lists.peek(key)
    if body is None:

        def render() -> tuple[bytes, frozenset[str]]:
            found = job_list(host, plugin=plugin, tag=tag, state=state, limit=limit, cursor=cursor)
            return found.model_dump_json().encode(), frozenset(job.id for job in found.jobs)

        # Requests arriving while a render is under way share the next one (ADR 0038) instead
        # of each holding a thread blocked on the render before it.
        renders: Coalesce = request.app.state.renders
        try:
            body = await renders.get(
                ("jobs", *key), lambda: run_in_threadpool(lists.get, key, render)
            )
        except UnknownCursorError as err:
            raise RequestError(422, "INVALID_REQUEST", str(err)) from None
    return Response(body, media_type="application/json")


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
async def trigger_job(
    request: Request,
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
    record = await run_in_threadpool(
        lambda: operations.trigger(known(host, job_id), requested_by=token.name)
    )
    _changed(request, record.job)
    # Waiting holds a thread of its own pool, never one of the pool that answers every other
    # request: a burst of waiting triggers must not stall GET /jobs (ADR 0031). With all of
    # them taken, the run is answered as it is now (202), as when the wait ends.
    waiters: anyio.CapacityLimiter = request.app.state.waiters
    if wait and waiters.available_tokens > 0:
        record = await anyio.to_thread.run_sync(
            operations.wait, record.run_id, timeout, limiter=waiters
        )
        if record.status not in ("queued", "running"):
            response.status_code = 200
    return record


def _changed(request: Request, job: str | None = None) -> None:
    """This request changed what job lists show: of ``job``, or (None) which jobs they hold."""
    lists: Fresh = request.app.state.job_lists
    lists.changed(job)


@router.post("/jobs/{job_id}/pause", operation_id="pause_job", responses=responses(404, 409))
def pause_job(
    request: Request, job_id: JobId, host: HostDep, operations: OperationsDep, token: Admin
) -> PauseState:
    """Stop the job's schedule until resumed (kept in the store: survives restarts)."""
    state = operations.set_paused(known(host, job_id), True, by=token.name)
    _changed(request)
    return state


@router.post("/jobs/{job_id}/resume", operation_id="resume_job", responses=responses(404, 409))
def resume_job(
    request: Request, job_id: JobId, host: HostDep, operations: OperationsDep, token: Admin
) -> PauseState:
    """Let a paused job fire again from now on (missed fires are not replayed)."""
    state = operations.set_paused(known(host, job_id), False, by=token.name)
    _changed(request)
    return state
