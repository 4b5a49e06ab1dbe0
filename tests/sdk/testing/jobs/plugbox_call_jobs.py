"""Jobs that make one runtime call their config names and report what came back or was raised."""

from __future__ import annotations

from typing import Any

from plugbox.sdk import FileStat, JobContext, PermissionDenied, job


@job("fs-call", timeout="20s")
def fs_call(ctx: JobContext) -> dict[str, Any]:
    """Call ``runtime.fs.<method>(*args, **kwargs)`` and report what came back or was raised."""
    method = str(ctx.config["method"])
    args = list(ctx.config.get("args") or [])
    kwargs = dict(ctx.config.get("kwargs") or {})
    if method == "write_bytes":
        args[1] = str(args[1]).encode()  # config is JSON: bytes travel as text
    try:
        value = getattr(ctx.runtime.fs, method)(*args, **kwargs)
    except PermissionDenied as denied:
        return {"denied": denied.rule, "reason": denied.reason}
    except OSError as err:
        return {"error": type(err).__name__, "message": str(err)}
    if isinstance(value, FileStat):
        value = {"is_dir": value.is_dir, "is_file": value.is_file}
    elif isinstance(value, bytes):
        value = value.decode()
    return {"value": value}


@job("net-call", timeout="20s")
def net_call(ctx: JobContext) -> dict[str, Any]:
    """``runtime.net.request(method, url, timeout=...)``; the exception's type and text, if any."""
    try:
        response = ctx.runtime.net.request(
            str(ctx.config.get("method", "GET")),
            str(ctx.config["url"]),
            timeout=ctx.config.get("timeout"),
        )
    except PermissionDenied as denied:
        return {"denied": denied.rule, "message": str(denied)}
    except OSError as err:
        return {"error": type(err).__name__, "message": str(err)}
    return {"status": response.status}
