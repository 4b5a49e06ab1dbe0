"""Class F through the CLI: whatever a job writes to its control socket, the parent bounds it.

The review had a 20 MiB result, a 19 MiB access list, 8 MiB error texts and 96 MiB of events
recorded as sent, a ``NaN`` result recorded as a success (``--json`` then printed invalid JSON),
and deep nesting raising ``RecursionError`` in the host with the run left ``running``. Each job
in ``plugbox_hostile.jobs_frames`` writes ``.plugbox/eve/<job>.ran`` before it attacks (the
proof it ran), then sleeps a minute: a run that ends within seconds was ended by the parent.

Every record here is read with a strict JSON parser, the CLI's exit status is checked, and no run
may be left ``running``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from plugbox.sandbox.outcome import (
    MAX_ACCESS_CHARS,
    MAX_ACCESSES,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    MAX_EVENTS_BYTES,
    MAX_LOG_BYTES,
    MAX_LOG_ENTRIES,
    MAX_LOG_FIELDS_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_RESULT_BYTES,
    MAX_TRACEBACK_CHARS,
)
from plugbox.sandbox.protocol import MAX_CHILD_FRAME, MAX_DEPTH, MAX_VALUE_DEPTH
from plugbox.sandbox.run_watch import MAX_CONTROL_BYTES

from .conftest import Host

#: The jobs sleep 60 s after attacking (timeout 20 s): ending sooner means the parent stopped it.
STOPPED_WITHIN_MS = 10_000


def _refuse(name: str) -> Any:
    raise ValueError(f"the CLI printed {name}, which is not JSON")


def run(host: Host, job: str) -> dict[str, Any]:
    """The record of ``plugbox jobs run eve:JOB --json``, checked for what every run must be."""
    out = host.cli("jobs", "run", f"eve:{job}", "--json")
    record: dict[str, Any] = json.loads(out.stdout, parse_constant=_refuse)  # strict JSON
    assert (out.returncode == 0) == (record["status"] == "success"), (out.returncode, record)
    assert (host.workspace / ".plugbox" / "eve" / f"{job}.ran").exists(), "the attack never ran"
    stored = {r["run_id"]: r["status"] for r in host.runs()}
    assert stored[record["run_id"]] == record["status"]
    assert "running" not in stored.values()
    return record


def violation(host: Host, job: str, *words: str) -> dict[str, Any]:
    record = run(host, job)
    assert record["status"] == "failed", record["error"]
    assert record["error"]["type"] == "ProtocolViolation", record["error"]
    for word in words:
        assert word in record["error"]["message"], record["error"]["message"]
    assert record["duration_ms"] < STOPPED_WITHIN_MS
    return record


# --- size ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("job", ["frames-result-20mib", "frames-accesses-19mib"])
def test_a_frame_over_the_limit_is_refused_from_its_header(host: Host, job: str) -> None:
    violation(host, job, "announced", f"the limit is {MAX_CHILD_FRAME}")


def test_a_result_over_its_limit_fails_the_run_naming_size_and_limit(host: Host) -> None:
    raw = run(host, "frames-result-3mib")  # written past the child's own check
    assert raw["status"] == "failed" and raw["result"] is None
    assert raw["error"]["type"] == "ResultTooLarge"
    assert f"the limit is {MAX_RESULT_BYTES}" in raw["error"]["message"]
    assert str(3 * 1024 * 1024 + 2) in raw["error"]["message"]  # its measured size
    honest = run(host, "frames-result-honest-20mib")  # returned: refused in the child, same words
    assert honest["error"]["type"] == "ResultTooLarge"
    assert f"the limit is {MAX_RESULT_BYTES}" in honest["error"]["message"]


def test_a_huge_error_is_clipped_and_flagged(host: Host) -> None:
    record = run(host, "frames-error-huge")
    error = record["error"]
    assert record["status"] == "failed" and error["truncated"] is True
    assert error["type"] == "E" * 200
    assert error["message"].startswith("mmm") and len(error["message"]) < MAX_MESSAGE_CHARS + 100
    assert len(error["traceback"]) < MAX_TRACEBACK_CHARS + 100


def test_an_access_list_is_bounded_in_count_and_per_entry(host: Host) -> None:
    record = run(host, "frames-accesses-many")
    assert record["status"] == "success" and record["result"] == {"sent": 5001}  # control
    denials = record["denials"]
    assert 0 < len(denials) <= MAX_ACCESSES
    assert max(len(d["target"]) for d in denials) <= MAX_ACCESS_CHARS
    assert not any(d["target"].startswith("hhh") for d in denials)


def test_events_are_bounded_in_count_size_and_total(host: Host) -> None:
    record = run(host, "frames-events-flood")
    result = record["result"]
    assert record["status"] == "success" and result["control"] == {"sent": 3103}
    refused = result["attempts"]["honest_too_big"]  # an honest job hears why, at its call
    assert refused["ok"] is False and f"the limit is {MAX_EVENT_BYTES}" in refused["error"]
    events = record["events"]
    assert record["events_truncated"] is True
    assert 0 < len(events) <= MAX_EVENTS
    sizes = [len(json.dumps(e["data"])) for e in events]
    assert max(sizes) <= MAX_EVENT_BYTES and sum(sizes) <= MAX_EVENTS_BYTES
    assert not any(e["name"] == "huge" for e in events)


def test_log_lines_are_bounded_in_count_size_and_total(host: Host) -> None:
    record = run(host, "frames-log-flood")
    result = record["result"]
    assert record["status"] == "success" and result["control"] == {"sent": 3006}
    refused = result["attempts"]["honest_fields_too_big"]
    assert refused["ok"] is False and f"the limit is {MAX_LOG_FIELDS_BYTES}" in refused["error"]
    log = record["log"]
    assert record["log_truncated"] is True and 0 < len(log) <= MAX_LOG_ENTRIES
    assert max(len(entry["message"]) for entry in log) < MAX_MESSAGE_CHARS + 100
    assert max(len(json.dumps(entry["fields"])) for entry in log) <= MAX_LOG_FIELDS_BYTES
    assert sum(len(e["message"]) + len(json.dumps(e["fields"])) for e in log) <= MAX_LOG_BYTES


def test_a_flood_of_small_frames_is_killed(host: Host) -> None:
    record = run(host, "frames-control-flood")
    assert record["status"] == "killed" and record["kill_reason"] == "output"
    assert str(MAX_CONTROL_BYTES) in record["error"]["message"]
    assert record["duration_ms"] < STOPPED_WITHIN_MS


# --- what JSON does not allow ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("job", "word"),
    [
        ("frames-nan-result", "NaN"),
        ("frames-infinity-event", "Infinity"),
        ("frames-infinity-log-field", "-Infinity"),
        ("frames-overflow-result", "1e999"),
    ],
)
def test_non_finite_numbers_fail_the_run_and_the_record_stays_json(
    host: Host, job: str, word: str
) -> None:
    violation(host, job, word)


def test_an_honest_nan_is_refused_in_the_child_and_events_say_inf(host: Host) -> None:
    record = run(host, "frames-honest-nan")
    assert record["status"] == "failed"
    assert record["error"]["type"] == "ResultNotSerialisable"
    assert record["events"][0]["data"] == {"v": "inf"}
    assert record["log"][0]["fields"] == {"v": "nan"}


def test_a_lone_surrogate_fails_the_run(host: Host) -> None:
    violation(host, "frames-lone-surrogate", "surrogate")


@pytest.mark.parametrize("job", ["frames-deep-raw-event", "frames-deep-raw-result"])
def test_deep_nesting_fails_the_run_and_never_the_host(host: Host, job: str) -> None:
    violation(host, job, f"deeper than {MAX_DEPTH}")


def test_deep_nesting_through_emit_is_refused_at_the_call(host: Host) -> None:
    record = run(host, "frames-deep-emit")
    assert record["status"] == "success"
    refused = record["result"]["attempts"]["deep_emit"]
    assert refused["ok"] is False and f"deeper than {MAX_VALUE_DEPTH}" in refused["error"]
    assert [e["name"] for e in record["events"]] == ["shallow"]  # control: emit itself works


def test_a_deeply_nested_return_value_fails_the_run_with_the_reason(host: Host) -> None:
    record = run(host, "frames-deep-return")
    assert record["status"] == "failed" and record["error"]["type"] == "ResultTooDeep"
    assert str(MAX_VALUE_DEPTH) in record["error"]["message"]


# --- frames that are not frames -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("job", "word"),
    [
        ("frames-garbage", "not UTF-8"),
        ("frames-huge-header", "announced 4294967295 bytes"),
        ("frames-unknown-type", "unknown type 'exec'"),
    ],
)
def test_garbage_on_the_control_socket_fails_the_run(host: Host, job: str, word: str) -> None:
    violation(host, job, word)


def test_a_header_lying_about_its_size_cannot_hold_the_run_past_its_timeout(host: Host) -> None:
    record = run(host, "frames-lying-header")  # timeout 3 s; announces 1000 bytes, sends 12
    assert record["status"] == "timeout" and record["kill_reason"] == "timeout"
    assert 3000 <= record["duration_ms"] < 5000


def test_a_child_dying_mid_frame_is_a_complete_failed_record(host: Host) -> None:
    record = run(host, "frames-die-mid-frame")
    assert record["status"] == "failed"
    assert record["error"]["type"] == "ExitedWithoutResult"
    assert "status 3" in record["error"]["message"]
