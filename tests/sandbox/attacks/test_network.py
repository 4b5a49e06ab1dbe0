"""Class G through the CLI: the deadline never waits for the network.

A 2 s job asks a local server that trickles its body (one byte every 0.2 s, so no socket timeout
ever fires) or accepts and never answers; before the fix such a run took as long as the server
liked (30-42 s in the review). The server counts the requests it got — the proof the job really
asked — and after each slow run an honest job must run at once: the host stayed responsive.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from plugbox.sandbox.net_request import MAX_RESPONSE_BODY

from ..slow_http import SlowServer, slow_server
from .conftest import Host

#: The kill comes at the timeout; this leaves room for a loaded 2-core machine, not for a wait.
SLACK_MS = 2000


def tell(host: Host, server: SlowServer) -> None:
    """Put the server's URL where the job reads it."""
    folder = host.workspace / ".plugbox" / "eve"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net-url.txt").write_text(server.url() + "\n")
    for path in (folder, folder / "net-url.txt"):
        os.chown(path, host.uid, -1)


def run(host: Host, job: str) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    out = host.cli("jobs", "run", f"eve:{job}", "--json")
    took = time.monotonic() - began
    record: dict[str, Any] = json.loads(out.stdout)
    assert (out.returncode == 0) == (record["status"] == "success"), (out.returncode, record)
    assert (host.workspace / ".plugbox" / "eve" / f"{job}.ran").exists(), "the job never ran"
    return record, took


def assert_responsive(host: Host) -> None:
    record, _ = run_control(host)
    assert record["status"] == "success", record["error"]


def run_control(host: Host) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    out = host.cli("jobs", "run", "eve:control", "--json")
    return json.loads(out.stdout), time.monotonic() - began


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_a_slow_server_cannot_hold_a_run_past_its_timeout(host: Host, mode: str) -> None:
    with slow_server(mode, every=0.2) as server:
        tell(host, server)
        record, took = run(host, "net-slow")
        assert server.hits == 1  # the job's request reached the server
    assert record["status"] == "timeout" and record["kill_reason"] == "timeout"
    assert 2000 <= record["duration_ms"] < 2000 + SLACK_MS, record["duration_ms"]
    assert took < 20, f"the CLI took {took:.1f} s"  # the host exits too: nothing waits on it
    assert_responsive(host)


def test_replies_the_child_never_reads_cannot_stall_the_parent(host: Host) -> None:
    with slow_server("big", size=5 * 1024 * 1024) as server:
        tell(host, server)
        record, _ = run(host, "net-unread-reply")  # timeout 3 s
        assert server.hits >= 1
    assert record["status"] == "timeout", record["error"]
    assert 3000 <= record["duration_ms"] < 3000 + SLACK_MS, record["duration_ms"]
    assert_responsive(host)


def test_a_response_over_the_cap_is_refused_with_the_limit(host: Host) -> None:
    with slow_server("big", size=MAX_RESPONSE_BODY + 1) as server:
        tell(host, server)
        record, _ = run(host, "net-big-response")
        assert server.hits == 1
    assert record["status"] == "success", record["error"]
    got = record["result"]["attempts"]["get"]
    assert got["ok"] is False and f"larger than the {MAX_RESPONSE_BODY}-byte limit" in got["error"]
