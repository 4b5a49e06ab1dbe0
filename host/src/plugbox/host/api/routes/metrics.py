"""``GET /metrics``: the host's Prometheus metrics (docs/metrics.md).

A plain route rendering :meth:`plugbox.host.metrics.HostMetrics.render_metrics` — mounting
prometheus-client's ``make_asgi_app`` at ``/metrics`` would answer ``/metrics`` with a 307 to
``/metrics/``. Needs the ``read`` scope unless ``[http] metrics_public = true``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from plugbox.host.api.auth import _bearer, scope
from plugbox.host.api.errors import responses
from plugbox.host.metrics import HostMetrics

router = APIRouter(tags=["metrics"], responses=responses(401, 403))
_read = scope("read")


async def _reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not request.app.state.host.config.http.metrics_public:
        await _read(request, credentials)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format 0.0.4 (OpenMetrics when asked for)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    dependencies=[Depends(_reader)],
)
def metrics(request: Request) -> Response:
    """Every plugbox_* metric: runs, durations, kills, denials, last success, next fire, queue."""
    host_metrics: HostMetrics = request.app.state.metrics
    body, content_type = host_metrics.render_metrics(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
