"""``/healthz`` (the process answers) and ``/readyz`` (it does its work); both need no token."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from plugbox.host.api.deps import OperationsDep
from plugbox.host.operations import Readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = "ok"


@router.get("/healthz", operation_id="healthz")
def healthz() -> Health:
    """The process is up and answering."""
    return Health()


@router.get(
    "/readyz",
    operation_id="readyz",
    responses={503: {"model": Readiness, "description": "not ready; detail says why"}},
)
def readyz(operations: OperationsDep, response: Response) -> Readiness:
    """Plugins discovered, run store reachable, scheduler loop turning: 200, else 503."""
    state = operations.readiness()
    if not state.ready:
        response.status_code = 503
    return state
