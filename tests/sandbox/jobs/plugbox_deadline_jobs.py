"""Jobs that talk to slow servers, for ``tests/sandbox/test_deadline.py``.

Loaded by the confined child through ``RunRequest.python_path``; never imported by the tests.
"""

from __future__ import annotations

import time


def net_get(ctx):
    """GET ``config.url``; what came back, or what stopped it (the job catches it)."""
    started = time.monotonic()
    try:
        response = ctx.runtime.net.get(ctx.config["url"], timeout=ctx.config.get("timeout", 60))
    except OSError as err:
        return {"error": f"{type(err).__name__}: {err}", "s": time.monotonic() - started}
    return {"status": response.status, "bytes": len(response.content)}


def ok(ctx):
    return {"ok": True}


def import_path(ctx):
    """Where this child (a fork of the zygote) finds its modules."""
    import json
    import socket
    import sys

    return {"sys_path": sys.path, "socket": socket.__file__, "json": json.__file__}


def nap(ctx):
    """Sleep ``config.seconds``, then succeed: a run that is in flight for a while."""
    time.sleep(float(ctx.config.get("seconds", 1)))
    return {"slept": True}
