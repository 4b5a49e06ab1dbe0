"""The HTTP API as a FastAPI app over the host's services and the running host's operations."""

from __future__ import annotations

import anyio
from fastapi import FastAPI

from plugbox.host.api import errors
from plugbox.host.api.coalesce import Coalesce
from plugbox.host.api.fresh import Fresh
from plugbox.host.api.routes import health, jobs, plugins, runs
from plugbox.host.api.routes import metrics as metrics_routes
from plugbox.host.metrics import HostMetrics
from plugbox.host.operations import Operations
from plugbox.host.services import Host
from plugbox.host.tokens import TokenStore

#: How long a rendered GET /jobs answer may be served when nothing this host did changed it.
JOB_LIST_MAX_AGE_S = 1.0
#: ``POST /jobs/{id}/trigger?wait=true`` requests waiting at once; more answer 202 at once.
MAX_WAITING_TRIGGERS = 200


def create_app(
    host: Host,
    operations: Operations,
    tokens: TokenStore | None = None,
    metrics: HostMetrics | None = None,
) -> FastAPI:
    """The API of one host. ``tokens`` defaults to the host's state directory."""
    app = FastAPI(
        title="plugbox",
        version="1",
        summary="Scheduled plugin jobs in a permission sandbox: jobs, runs, plugins.",
        description="Send `Authorization: Bearer <token>` (from `plugbox tokens create`)."
        " Scopes nest: read < trigger < admin. /healthz and /readyz need no token.",
        # FastAPI's documentation pages load their scripts from a CDN: an operator's host must
        # not reach out to one, and must work offline. /openapi.json is the reference.
        docs_url=None,
        redoc_url=None,
    )
    app.state.host = host
    app.state.operations = operations
    app.state.tokens = tokens or TokenStore(host.config.state_dir)
    app.state.metrics = metrics
    # GET /jobs bodies (ADR 0031): rendered again once a run of this host ends, or after a second.
    app.state.job_lists = Fresh(JOB_LIST_MAX_AGE_S)
    host.listeners.append(lambda record: app.state.job_lists.changed(record.job))
    # Identical reads asked at once share one store read and render (ADR 0038).
    app.state.renders = Coalesce()
    app.state.waiters = anyio.CapacityLimiter(MAX_WAITING_TRIGGERS)
    errors.install(app)
    routers = [health.router, plugins.router, jobs.router, runs.router]
    if metrics is not None:
        routers.append(metrics_routes.router)
    for router in routers:
        app.include_router(router)
    from plugbox.host.web import install as install_admin_page  # it imports this package

    install_admin_page(app)
    return app
