"""``/runs``: history newest first with a cursor, one run in full, and cancel."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from plugbox.host.api.auth import scope
from plugbox.host.api.coalesce import Coalesce
from plugbox.host.api.deps import HostDep, OperationsDep
from plugbox.host.api.errors import RequestError, responses
from plugbox.host.store import RunCursor, RunRecord, RunStatus, Trigger
from plugbox.host.tokens import TokenInfo

router = APIRouter(tags=["runs"], responses=responses(401, 403))
Reader = Annotated[TokenInfo, Depends(scope("read"))]
Admin = Annotated[TokenInfo, Depends(scope("admin"))]
MAX_PAGE = 200


class RunPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    runs: tuple[RunRecord, ...] = Field(description="newest first")
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next, older page; null on the last page"
    )


def encode_cursor(cursor: RunCursor) -> str:
    return base64.urlsafe_b64encode(cursor.model_dump_json().encode()).decode().rstrip("=")


def decode_cursor(text: str) -> RunCursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return RunCursor.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise RequestError(
            422,
            "INVALID_REQUEST",
            "the cursor is not one this API gave out; pass next_cursor from a GET /runs answer"
            " unchanged",
        ) from None


def _iso_text(value: Any) -> Any:
    # pydantic would also read "0.5" as seconds since the epoch; the API promises RFC 3339
    # date-times (as its OpenAPI document says), so a bare number is refused, not guessed at.
    if isinstance(value, str) and not _ISO_START.match(value):
        raise ValueError("give an ISO 8601 date-time with a zone, e.g. 2026-01-01T00:00:00Z")
    return value


_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}[T ]")
Instant = Annotated[datetime, BeforeValidator(_iso_text)]


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise RequestError(
            422,
            "INVALID_REQUEST",
            f"{name}={value.isoformat()} has no time zone; add one, e.g. {name}=2026-01-01T00:00Z",
        )
    return value


@router.get("/runs", operation_id="list_runs", response_model=RunPage, responses=responses(422))
async def list_runs(
    request: Request,
    host: HostDep,
    _: Reader,
    job: Annotated[str | None, Query(description="PLUGIN:JOB")] = None,
    status: RunStatus | None = None,
    trigger: Trigger | None = None,
    since: Annotated[Instant | None, Query(description="runs at or after (ISO 8601)")] = None,
    until: Annotated[Instant | None, Query(description="runs before (ISO 8601)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Response:
    """Run history, newest first (by start time, else due time), a page at a time."""
    after = None if cursor is None else decode_cursor(cursor)
    since, until = _aware(since, "since"), _aware(until, "until")

    def render() -> bytes:
        records = host.store.list(
            job=job,
            status=status,
            trigger=trigger,
            since=since,
            before=until,
            cursor=after,
            limit=limit + 1,
        )
        page = records[:limit]
        more = len(records) > limit
        next_cursor = encode_cursor(RunCursor.after(page[-1])) if more else None
        return RunPage(runs=tuple(page), next_cursor=next_cursor).model_dump_json().encode()

    key = ("runs", job, status, trigger, since, until, cursor, limit)
    return await _shared(request, key, render)


@router.get(
    "/runs/{run_id}", operation_id="get_run", response_model=RunRecord, responses=responses(404)
)
async def get_run(request: Request, run_id: str, host: HostDep, _: Reader) -> Response:
    """The whole record: log, events, error with traceback, denials, resources, enforcement."""
    return await _shared(
        request, ("run", run_id), lambda: host.store.get(run_id).model_dump_json().encode()
    )


async def _shared(
    request: Request, key: tuple[object, ...], render: Callable[[], bytes]
) -> Response:
    """``render``'s JSON body, shared by the identical requests asked meanwhile (ADR 0038).

    The store read and the JSON go to the thread pool together, once; the body is the
    record model's own JSON (the routes declare that model, so /openapi.json describes it),
    without FastAPI validating the models the store has just built a second time.
    """
    renders: Coalesce = request.app.state.renders
    body = await renders.get(key, lambda: run_in_threadpool(render))
    return Response(body, media_type="application/json")


@router.post(
    "/runs/{run_id}/cancel",
    operation_id="cancel_run",
    status_code=202,
    responses=responses(404, 409),
)
def cancel_run(run_id: str, operations: OperationsDep, token: Admin) -> RunRecord:
    """Stop a queued or running run of this host; 202 with the record as it is now.

    A queued run ends ``cancelled`` at once; a running one is stopped and ends ``cancelled``
    moments later (follow it with GET /runs/{run_id}). Recorded with the token's name.
    """
    return operations.cancel(run_id, by=token.name)
