"""The example plugin's jobs. Each one touches the world only through ``ctx.runtime``."""

from __future__ import annotations

from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms

NAMESPACE = "example"
WORKSPACE = f".plugbox/{NAMESPACE}"
CACHE_DIR = f"{WORKSPACE}/cache"
DAY_SECONDS = 86_400


@job(
    "hello-cron",
    schedule="*/5 * * * *",
    description="Says hello every 5 minutes",
    timeout="10s",
    retries=2,
    priority=5,
    tags=["demo"],
    permissions=perms.combine(
        perms.presets.plugin_workspace(NAMESPACE),
        perms.Permissions(quotas=perms.Quotas(timeout_ms=10_000, memory_mb=64, cpu_ms=5_000)),
    ),
)
def hello(ctx: JobContext) -> dict[str, Any]:
    ctx.runtime.fs.mkdir(WORKSPACE, parents=True, exist_ok=True)
    ctx.runtime.fs.append_text(f"{WORKSPACE}/cron.log", f"run {ctx.run_count}\n")
    ctx.logger.info("said hello", run=ctx.run_count)
    ctx.emit("hello.said", {"run": ctx.run_count})
    return {"ok": True, "run": ctx.run_count}


@job(
    "cleanup",
    schedule="0 3 * * *",
    description="Deletes cache files older than max_age_days",
    timeout="1m",
    config={"max_age_days": 7},
    permissions=perms.presets.plugin_workspace(NAMESPACE),
)
def cleanup(ctx: JobContext) -> dict[str, Any]:
    """Delete files in the plugin's cache directory older than ``config['max_age_days']``."""
    max_age_days = float(ctx.config.get("max_age_days", 7))
    fs = ctx.runtime.fs
    if not fs.exists(CACHE_DIR):
        return {"deleted": [], "kept": 0}
    cutoff = ctx.scheduled_at.timestamp() - max_age_days * DAY_SECONDS
    deleted: list[str] = []
    kept = 0
    for name in sorted(fs.listdir(CACHE_DIR)):
        path = f"{CACHE_DIR}/{name}"
        info = fs.stat(path)
        if info.is_file and info.modified < cutoff:
            fs.remove(path)
            deleted.append(name)
        else:
            kept += 1
    ctx.logger.info("cache cleaned", deleted=len(deleted), kept=kept)
    if deleted:
        ctx.emit("cache.cleaned", {"deleted": deleted})
    return {"deleted": deleted, "kept": kept}


@job(
    "rate-limit",
    schedule="@hourly",
    description="Records the GitHub API rate limit (token from GITHUB_TOKEN if set)",
    timeout="30s",
    retries=3,
    permissions=perms.combine(
        perms.presets.plugin_workspace(NAMESPACE),
        perms.presets.http_hosts("api.github.com:443"),
        perms.presets.env_vars("GITHUB_TOKEN"),
    ),
)
def rate_limit(ctx: JobContext) -> dict[str, Any]:
    """Ask api.github.com how many requests are left and keep the answer in the workspace."""
    headers = {"Accept": "application/vnd.github+json"}
    token = ctx.runtime.env.get("GITHUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = ctx.runtime.net.get("https://api.github.com/rate_limit", headers=headers)
    if response.status != 200:
        raise RuntimeError(f"api.github.com answered {response.status}: {response.text[:200]}")
    core = response.json()["resources"]["core"]
    ctx.runtime.fs.mkdir(WORKSPACE, parents=True, exist_ok=True)
    ctx.runtime.fs.write_text(f"{WORKSPACE}/rate_limit.json", response.text)
    ctx.emit("rate_limit.checked", {"remaining": core["remaining"], "limit": core["limit"]})
    return {"remaining": core["remaining"], "limit": core["limit"], "authenticated": bool(token)}
