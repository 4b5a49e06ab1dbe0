"""Jobs the harness tests run, written as a plugin author would (a module outside the tests, so
the sandbox child imports it by name like an installed plugin)."""

from __future__ import annotations

from typing import Any

from plugbox.sdk import JobContext, PermissionDenied, define_manifest, job
from plugbox.sdk import permissions as perms

NOTES = ".plugbox/acme-notes/notes.txt"


@job(
    "write-note",
    timeout="10s",
    config={"message": "hello"},
    permissions=perms.presets.plugin_workspace("acme-notes"),
)
def write_note(ctx: JobContext) -> dict[str, Any]:
    ctx.runtime.fs.mkdir(".plugbox/acme-notes", parents=True, exist_ok=True)
    ctx.runtime.fs.append_text(NOTES, f"run {ctx.run_count}: {ctx.config['message']}\n")
    ctx.logger.info("note written", run=ctx.run_count)
    ctx.emit("note.written", {"run": ctx.run_count})
    return {"run": ctx.run_count, "message": ctx.config["message"]}


@job("clock")
def clock(ctx: JobContext) -> dict[str, Any]:
    return {
        "job": ctx.qualified_job_id,
        "version": ctx.plugin_version,
        "scheduled_at": ctx.scheduled_at.isoformat(),
        "run_count": ctx.run_count,
        "attempt": ctx.attempt,
        "trigger": ctx.trigger,
        "has_deadline": ctx.time_left is not None,
    }


@job("read-env", permissions=perms.presets.env_vars("TOKEN"))
def read_env(ctx: JobContext) -> dict[str, Any]:
    try:
        ctx.runtime.env.get("SECRET")
    except PermissionDenied as denied:
        refused = denied.rule
    return {
        "token": ctx.runtime.env.get("TOKEN"),
        "names": ctx.runtime.env.names(),
        "refused": refused,
    }


@job("fetch", permissions=perms.presets.http_hosts("api.example.com:443"))
def fetch(ctx: JobContext) -> dict[str, Any]:
    response = ctx.runtime.net.request(
        str(ctx.config.get("method", "GET")),
        str(ctx.config["url"]),
        json=ctx.config.get("body"),
    )
    return {"status": response.status, "text": response.text, "url": response.url}


@job("ping")
def ping(ctx: JobContext) -> int:
    """Declares nothing itself: it relies on the plugin-level permissions of ``manifest``."""
    return ctx.runtime.net.get("https://api.example.com/ping").status


def _parse(text: str) -> int:
    return int(text)


@job("boom")
def boom(ctx: JobContext) -> int:
    return _parse("not a number")


@job("slow-clock", timeout="3s", permissions={"quotas": {"timeout_ms": 60_000}})
def slow_clock(ctx: JobContext) -> None:
    """Never run: its request shows how ``timeout`` and ``quotas.timeout_ms`` combine."""


manifest = define_manifest(
    id="acme-notes",
    version="1.2.3",
    name="Acme notes",
    permissions=perms.presets.http_hosts("api.example.com"),
    jobs=[write_note, clock, ping],
)
