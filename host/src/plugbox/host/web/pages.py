"""The admin page's routes: shells anyone may load, and fragments that need a ``read`` token.

A shell (``/``, ``/ui/plugins``, ``/ui/jobs/{id}``, ``/ui/runs/{id}``) is the layout and the
stylesheet and script, with no data: loading it needs no token and shows nothing secret. Its
script fetches the matching fragment under ``/ui/part/`` with ``Authorization: Bearer`` from
sessionStorage, puts it in place, and fetches it again every couple of seconds. Fragments are
rendered here, by Jinja with autoescaping, from the same catalog and store the JSON API reads;
buttons post to the JSON API itself. Why this shape, and not cookies: ADR 0018.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined

from plugbox.host.api.auth import scope
from plugbox.host.api.deps import HostDep
from plugbox.host.api.routes.jobs import known
from plugbox.host.catalog import (
    enforcement_levels,
    job_detail,
    job_list,
    plugin_detail,
    plugin_list,
)
from plugbox.host.tokens import SCOPES, TokenInfo
from plugbox.host.web.present import FILTERS

#: Fragments list this many recent runs (jobs page) and this many of one job's runs (job page).
RECENT_RUNS = 15
JOB_HISTORY = 50

#: No inline script or style, nothing from another origin, no framing: job text that slipped
#: past escaping still could not run, and the page cannot be clickjacked.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_environment = Environment(
    loader=PackageLoader("plugbox.host.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(FILTERS)
_environment.filters["path"] = lambda text: quote(str(text), safe="")
templates = Jinja2Templates(env=_environment)

router = APIRouter(include_in_schema=False)
Reader = Annotated[TokenInfo, Depends(scope("read"))]


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    context.setdefault("now", datetime.now(UTC))
    return templates.TemplateResponse(request, template, context, headers=SECURITY_HEADERS)


def _part(request: Request, template: str, token: TokenInfo, **context: Any) -> HTMLResponse:
    response = _page(
        request,
        template,
        token=token,
        can_trigger=token.allows("trigger"),
        can_admin=token.allows("admin"),
        **context,
    )
    # Shown in the page's header, so the operator sees which token (and power) is in use.
    strongest = max(token.scopes, key=SCOPES.index)
    response.headers["X-Plugbox-Token"] = f"{token.name} ({strongest})"
    return response


def _shell(
    request: Request, title: str, section: str, part: str, poll: bool = True
) -> HTMLResponse:
    return _page(request, "shell.html", title=title, section=section, part=part, poll=poll)


@router.get("/")
def jobs_page(request: Request) -> HTMLResponse:
    return _shell(request, "Jobs", "jobs", "/ui/part/jobs")


@router.get("/ui/plugins")
def plugins_page(request: Request) -> HTMLResponse:
    # Permissions change only when the host restarts, and this fragment is the costliest (every
    # job's kernel grants): fetched once, and again when the tab comes back into view.
    return _shell(request, "Plugins", "plugins", "/ui/part/plugins", poll=False)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> HTMLResponse:
    return _shell(request, job_id, "jobs", f"/ui/part/jobs/{quote(job_id, safe='')}")


@router.get("/ui/runs/{run_id}")
def run_page(request: Request, run_id: str) -> HTMLResponse:
    return _shell(request, f"Run {run_id[:12]}", "jobs", f"/ui/part/runs/{quote(run_id, safe='')}")


@router.get("/ui/part/jobs")
def jobs_part(request: Request, host: HostDep, token: Reader) -> HTMLResponse:
    jobs = job_list(host).jobs
    return _part(
        request,
        "jobs.html",
        token,
        jobs=jobs,
        recent=host.store.list(limit=RECENT_RUNS),
        running=host.store.running(),
        failing=[
            j for j in jobs if j.last_run and j.last_run.status in ("failed", "timeout", "killed")
        ],
        problems=plugin_list(host).problems,
    )


@router.get("/ui/part/plugins")
def plugins_part(request: Request, host: HostDep, token: Reader) -> HTMLResponse:
    return _part(
        request,
        "plugins.html",
        token,
        plugins=[plugin_detail(host, plugin) for plugin in host.discovery.plugins],
        problems=plugin_list(host).problems,
        enforcement=enforcement_levels(),
    )


@router.get("/ui/part/jobs/{job_id}")
def job_part(request: Request, job_id: str, host: HostDep, token: Reader) -> HTMLResponse:
    key = known(host, job_id)
    return _part(
        request,
        "job.html",
        token,
        job=job_detail(host, key),
        stats=host.store.stats(key).get(key),
        runs=host.store.list(job=key, limit=JOB_HISTORY),
    )


@router.get("/ui/part/runs/{run_id}")
def run_part(request: Request, run_id: str, host: HostDep, token: Reader) -> HTMLResponse:
    return _part(request, "run.html", token, run=host.store.get(run_id))


def install(app: FastAPI) -> None:
    """Serve the admin page and its assets (shipped in this package) from ``app``."""
    app.include_router(router)
    app.mount(
        "/ui/static", StaticFiles(packages=[("plugbox.host.web", "static")]), name="ui-static"
    )
