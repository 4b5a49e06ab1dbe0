"""A job whose declared permissions are both too wide and too narrow, for learn mode's tests."""

from __future__ import annotations

from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms


@job(
    "sync",
    permissions=perms.Permissions(
        fs=perms.FsPermissions(mode="readWrite", allow=["/exports/", "/old-cache/"]),
        net=perms.NetPermissions(allow_hosts=["api.example.com"]),
    ),
)
def sync(ctx: JobContext) -> dict[str, Any]:
    items = ctx.runtime.net.get("https://api.example.com/items").json()
    ctx.runtime.fs.mkdir("exports", exist_ok=True)
    ctx.runtime.fs.write_text("exports/items.json", str(items))
    token = ctx.runtime.env.get("SYNC_TOKEN")
    ctx.runtime.net.post("https://hooks.example.org/done", json={"n": len(items)})
    return {"items": len(items), "token_seen": token is not None}


@job("escape")
def escape(ctx: JobContext) -> dict[str, Any]:
    """Bypasses the proxies: learn mode must not open the kernel layers beyond the workspace."""
    try:
        with open(str(ctx.config["path"])) as handle:
            return {"read": handle.read()}
    except PermissionError as err:
        return {"stopped": err.errno}
