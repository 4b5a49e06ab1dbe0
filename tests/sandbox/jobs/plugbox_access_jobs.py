"""Jobs whose runtime calls the access record and the fake-HTTP responder are checked against."""

from __future__ import annotations

from typing import Any

from plugbox.sdk import JobContext, PermissionDenied


def mixed_calls(ctx: JobContext) -> dict[str, Any]:
    ctx.runtime.fs.mkdir("data", exist_ok=True)
    ctx.runtime.fs.write_text("data/out.txt", "x")
    ctx.runtime.fs.write_text("data/other.txt", "y")
    ctx.runtime.fs.listdir("data")
    refused = []
    for attempt in (
        lambda: ctx.runtime.fs.read_text(".env"),
        lambda: ctx.runtime.env.get("SECRET"),
    ):
        try:
            attempt()
        except PermissionDenied as denied:
            refused.append(denied.rule)
    return {"token": ctx.runtime.env.get("TOKEN"), "refused": refused}


def fetch(ctx: JobContext) -> dict[str, Any]:
    url = str(ctx.config["url"])
    try:
        response = ctx.runtime.net.get(url)
    except PermissionDenied as denied:
        return {"denied": denied.target, "rule": denied.rule}
    return {"status": response.status, "body": response.json(), "url": response.url}


def busy(ctx: JobContext) -> dict[str, Any]:
    """Touches every capability, mostly outside what its tests declare."""
    fs = ctx.runtime.fs
    fs.mkdir("reports/daily", parents=True, exist_ok=True)
    fs.write_text("reports/daily/today.json", "{}")
    fs.append_text("reports/index.txt", "today\n")
    settings = fs.read_text("settings.toml")
    listed = fs.listdir("reports")
    token = ctx.runtime.env.get("API_TOKEN")
    response = ctx.runtime.net.get("https://api.example.com/v1/items")
    echoed = ctx.runtime.shell.run(["echo", "hello *"]).stdout.strip()
    return {
        "settings": settings,
        "listed": listed,
        "token": token,
        "status": response.status,
        "echoed": echoed,
    }


def allocate(ctx: JobContext) -> dict[str, Any]:
    """Hold ``mb`` MiB (touched, so it is charged) for a moment; burn ``cpu_ms`` of CPU."""
    import time

    held = bytearray(int(ctx.config.get("mb", 0)) * 1024 * 1024)
    for offset in range(0, len(held), 4096):
        held[offset] = 1
    until = time.process_time() + int(ctx.config.get("cpu_ms", 0)) / 1000
    while time.process_time() < until:
        pass
    return {"held": len(held)}


def fetch_with_token(ctx: JobContext) -> dict[str, Any]:
    response = ctx.runtime.net.get(
        str(ctx.config["url"]),
        headers={"Authorization": "Bearer t0k", "Cookie": "s=1", "X-Trace": "1"},
    )
    return {"status": response.status}
