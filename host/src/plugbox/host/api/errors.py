"""One error shape for every failure the API reports: a code for programs, a sentence for people.

``{"code": "JOB_NOT_FOUND", "message": "...", "problems": [...]}``; ``problems`` lists each bad
field of a request that failed validation. Routes raise :class:`RequestError` or let the host's own
exceptions through; the handlers here turn both into that shape.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from plugbox.host.operations import (
    JobDisabledError,
    JobPausedError,
    RunElsewhereError,
    RunFinishedError,
)
from plugbox.host.services import UnknownJobError
from plugbox.host.store import RunLookupError

ErrorCode = Literal[
    "JOB_NOT_FOUND",
    "JOB_DISABLED",
    "JOB_PAUSED",
    "PLUGIN_BROKEN",
    "RUN_NOT_FOUND",
    "RUN_FINISHED",
    "INVALID_REQUEST",
    "UNAUTHORIZED",
    "FORBIDDEN",
]


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    where: str = Field(description="the part of the request, e.g. query.limit")
    problem: str


class ApiError(BaseModel):
    """What every non-2xx answer carries."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str = Field(description="what happened and what to do, for a person")
    problems: list[FieldProblem] = Field(default_factory=list)


class RequestError(Exception):
    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (each with :class:`ApiError`)."""
    described = {
        401: "no token, or one that is not known",
        403: "the token lacks the scope",
        404: "no such job, plugin or run",
        409: "the job or run is in a state that forbids this",
        422: "the request is malformed",
    }
    return {status: {"model": ApiError, "description": described[status]} for status in statuses}


def _answer(status: int, code: ErrorCode, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ApiError(code=code, message=message, **extra)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    """Route every failure through :class:`ApiError`."""

    @app.exception_handler(RequestError)
    async def _problem(_: Request, exc: RequestError) -> JSONResponse:
        return _answer(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [FieldProblem(where=_where(e["loc"]), problem=e["msg"]) for e in exc.errors()]
        summary = "; ".join(f"{p.where}: {p.problem}" for p in problems)
        return _answer(
            422, "INVALID_REQUEST", f"the request is malformed: {summary}", problems=problems
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own answers: an unknown path (404), a wrong method (405).
        message = str(exc.detail) if exc.detail else "the request cannot be served"
        if exc.status_code == 404:
            message = "no such endpoint; GET /openapi.json lists them"
        return _answer(exc.status_code, "INVALID_REQUEST", message)

    @app.exception_handler(UnknownJobError)
    async def _no_job(_: Request, exc: UnknownJobError) -> JSONResponse:
        return _answer(404, "JOB_NOT_FOUND", str(exc).strip("'\""))

    @app.exception_handler(RunLookupError)
    async def _no_run(_: Request, exc: RunLookupError) -> JSONResponse:
        return _answer(404, "RUN_NOT_FOUND", f"no run with id {exc.run_id!r}; GET /runs lists them")

    @app.exception_handler(JobPausedError)
    async def _paused(_: Request, exc: JobPausedError) -> JSONResponse:
        return _answer(409, "JOB_PAUSED", str(exc))

    @app.exception_handler(JobDisabledError)
    async def _disabled(_: Request, exc: JobDisabledError) -> JSONResponse:
        return _answer(409, "JOB_DISABLED", str(exc))

    @app.exception_handler(RunFinishedError)
    async def _finished(_: Request, exc: RunFinishedError) -> JSONResponse:
        return _answer(409, "RUN_FINISHED", str(exc))

    @app.exception_handler(RunElsewhereError)
    async def _elsewhere(_: Request, exc: RunElsewhereError) -> JSONResponse:
        return _answer(409, "INVALID_REQUEST", str(exc))
