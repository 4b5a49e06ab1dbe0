"""Class G: the deadline waits for the network.

The review's 5 s job ran 30-42 s by talking to a slow server: the parent performed the request
on its watch loop, so nothing was enforced meanwhile. These jobs ask a local server the test
runs (its URL in ``.plugbox/eve/net-url.txt``) that trickles its body, never answers, or sends
more than the response cap; one writes its own requests and never reads the replies. Each writes
``.plugbox/eve/<job>.ran`` first, the proof its attack code ran.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report
from plugbox_hostile.jobs_frames import send_raw

_PERMISSIONS = perms.combine(
    perms.presets.plugin_workspace("eve"),
    perms.presets.http_hosts("127.0.0.1"),  # the broker refuses loopback unless named
)


def _url(ctx: JobContext) -> str:
    ctx.runtime.fs.write_text(f".plugbox/eve/{ctx.job_id}.ran", f"{os.getpid()}\n")
    return ctx.runtime.fs.read_text(".plugbox/eve/net-url.txt").strip()


@job("net-slow", schedule="@daily", timeout="2s", permissions=_PERMISSIONS)
def slow(ctx: JobContext) -> dict[str, Any]:
    """Ask a server that trickles or never answers, with a request timeout of a minute."""
    url = _url(ctx)
    began = time.monotonic()
    got = attempt(ctx.runtime.net.get, url, timeout=60)
    return report({"waited_s": time.monotonic() - began}, get=got)


@job("net-unread-reply", schedule="@daily", timeout="3s", permissions=_PERMISSIONS)
def unread_reply(ctx: JobContext) -> dict[str, Any]:
    """Send requests past the channel and never read a reply (the parent must not block)."""
    url = _url(ctx)
    frame = {"type": "net", "method": "GET", "url": url, "headers": {}, "body": None}
    for _ in range(4):  # two in flight at most; the others are answered with an error at once
        send_raw(ctx, json.dumps({**frame, "timeout": 60}).encode())
    time.sleep(60)
    return report({"not stopped": True})


@job("net-big-response", schedule="@daily", timeout="20s", permissions=_PERMISSIONS)
def big_response(ctx: JobContext) -> dict[str, Any]:
    """Ask for a body larger than the broker's cap."""
    url = _url(ctx)
    return report({"asked": url}, get=attempt(ctx.runtime.net.get, url, timeout=15))


JOBS = [slow, unread_reply, big_response]
