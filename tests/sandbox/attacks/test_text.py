"""Class H: what a job writes reaches the operator's terminal as text, in every view.

Layer: the CLI's printer (``plugbox.host.cli_text``): every job-provided string is printed
without markup interpretation and with control characters escaped visibly; ``--json`` is
ASCII-only, valid JSON. The control is the record itself: the job ran and said what it said.
"""

from __future__ import annotations

import json
from typing import Any

from .conftest import Host

HOSTILE = "[/] [bold red]x \x1b]52;c;aGk=\x07 \x1b[2K \x1b]0;pwned\x07 \x9b31m \u202etxt.exe"
SHOWN = (
    "[/] [bold red]x",
    "\\x1b]52;c;aGk=\\x07",
    "\\x1b[2K",
    "\\x1b]0;pwned\\x07",
    "\\x9b31m",
    "\\u202etxt.exe",
)
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _inert(out: str, *, shown: tuple[str, ...] = SHOWN) -> None:
    for piece in shown:
        assert piece in out, f"{piece!r} is not shown in:\n{out[-3000:]}"
    for char in RAW:
        assert char not in out, f"{char!r} reached the terminal:\n{out[-3000:]!r}"


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_job_text_is_inert_in_jobs_run_runs_show_and_runs_list(host: Host) -> None:
    shouted = host.cli("jobs", "run", "eve:text-shout")
    assert shouted.returncode == 0, shouted.stderr
    _inert(shouted.stdout)
    for channel in ("log warning: log [/]", "event event [/]", "stdout [/]", "result:"):
        assert channel in shouted.stdout, channel

    record = host.run("text-shout")  # --json: the control, and the text kept exactly
    assert record["status"] == "success"
    assert record["result"]["control"]["said"] == HOSTILE
    assert [e["name"] for e in record["events"]] == ["event " + HOSTILE]
    assert record["log"][0]["message"] == "log " + HOSTILE
    assert host.last is not None
    assert not any(char in host.last.stdout for char in RAW)  # --json escapes them too

    shown = host.cli("runs", "show", record["run_id"])
    assert shown.returncode == 0, shown.stderr
    _inert(shown.stdout)
    assert _strict(host.cli("runs", "show", record["run_id"], "--json").stdout) == record

    listed = host.cli("runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert record["run_id"] in listed.stdout
    _strict(host.cli("runs", "list", "--json").stdout)


def test_an_error_message_with_markup_does_not_crash_the_views(host: Host) -> None:
    crashed = host.cli("jobs", "run", "eve:text-crash")
    assert crashed.returncode == 1, crashed.stderr  # the run failed; the CLI did not
    _inert(crashed.stdout)
    assert "RuntimeError: error [/] [bold red]x" in crashed.stdout
    assert "Traceback" in crashed.stdout

    record = host.run("text-crash")
    assert record["status"] == "failed"
    assert record["error"]["message"] == "error " + HOSTILE
    shown = host.cli("runs", "show", record["run_id"])
    assert shown.returncode == 0, shown.stderr  # was: rich MarkupError on '[/]'
    _inert(shown.stdout)
    assert "MarkupError" not in shown.stderr


def test_manifest_text_is_inert_in_jobs_list(host: Host) -> None:
    listed = host.cli("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert "eve:text-shout" in listed.stdout
    for char in RAW:
        assert char not in listed.stdout
    jobs = {j["job"]: j for j in _strict(host.cli("jobs", "list", "--json").stdout)["jobs"]}
    assert jobs["eve:text-shout"]["description"] == "says " + HOSTILE
