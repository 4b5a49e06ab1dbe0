"""The parent's boundary for what a run child sends: frames (protocol) and their contents (RunWatch).

Each attack is fed straight to the code that must stop it, with a control beside it showing the
same path accepts the honest form; the whole run, through the CLI, is in
``tests/sandbox/attacks/test_frames.py``.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from plugbox.sandbox.accesses import RecordingDecider
from plugbox.sandbox.outcome import (
    MAX_ACCESS_CHARS,
    MAX_ACCESSES,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    MAX_EVENTS_BYTES,
    MAX_LOG_BYTES,
    MAX_LOG_ENTRIES,
    MAX_MESSAGE_CHARS,
    MAX_RESULT_BYTES,
    MAX_TRACEBACK_CHARS,
    advisory_enforcement,
    json_result,
)
from plugbox.sandbox.protocol import (
    MAX_CHILD_FRAME,
    MAX_DEPTH,
    FrameReader,
    HangUpError,
    ProtocolError,
    decode,
    encode,
)
from plugbox.sandbox.run_watch import MAX_CONTROL_BYTES, RunWatch
from plugbox.sdk.permissions import Permissions, Quotas, effective_policy


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    parent, child = socket.socketpair()
    parent.setblocking(False)
    try:
        yield parent, child
    finally:
        parent.close()
        child.close()


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


# --- decode: what a frame may hold --------------------------------------------------------------
def test_an_honest_frame_decodes() -> None:
    message = {"type": "event", "name": "x", "data": {"a": [1, 2.5, "é", "😀"], "b": None}}
    assert decode(encode(message)[4:]) == message


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"], ids=lambda n: n
)
def test_non_finite_numbers_are_refused(number: str) -> None:
    with pytest.raises(ProtocolError, match=r"not a JSON number|too large for a float"):
        decode(f'{{"type":"result","result":{{"x":{number}}}}}'.encode())
    assert decode(b'{"type":"result","result":{"x":1e300}}')["result"] == {"x": 1e300}  # control


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 200_000])
def test_deep_nesting_is_refused_without_recursion_error(depth: int) -> None:
    deep = b'{"type":"event","data":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(ProtocolError, match=f"deeper than {MAX_DEPTH}"):
        decode(deep)
    ok = MAX_DEPTH - 1  # the frame's own object is one level
    assert decode(b'{"type":"event","data":' + b"[" * ok + b"]" * ok + b"}")["type"] == "event"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 10_000
    assert decode(encode({"type": "log", "message": text})[4:])["message"] == text


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b"])
def test_lone_surrogates_are_refused(escape: str) -> None:
    with pytest.raises(ProtocolError, match="surrogate"):
        decode(f'{{"type":"log","message":"{escape}"}}'.encode())
    with pytest.raises(ProtocolError, match="surrogate"):
        decode(f'{{"type":"log","fields":{{"{escape}":1}}}}'.encode())
    assert decode(b'{"type":"log","message":"\\ud83d\\ude00"}')["message"] == "😀"  # a pair


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(ProtocolError, match="not UTF-8"):
        decode(b'{"type":"log","message":"\xed\xa0\x80"}')  # a surrogate, UTF-8-encoded
    with pytest.raises(ProtocolError, match="not UTF-8"):
        decode(b"\xff\xfe garbage")


@pytest.mark.parametrize("payload", [b"[1,2]", b'"text"', b"7", b"null", b"hello", b""])
def test_anything_but_one_json_object_is_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(payload)


# --- FrameReader: never blocks, never buffers what it refuses -------------------------------------
def test_an_oversized_header_is_refused_before_its_body_arrives(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    parent, child = pair
    reader = FrameReader()
    child.sendall(struct.pack(">I", MAX_CHILD_FRAME + 1))  # the header alone: no body was sent
    with pytest.raises(ProtocolError, match=f"announced {MAX_CHILD_FRAME + 1} bytes"):
        reader.read(parent)
    control = FrameReader()
    child.sendall(frame(b'{"type":"log"}'))
    assert control.read(parent) == [({"type": "log"}, 14)]


def test_a_header_that_lies_about_its_size_never_blocks_the_reader(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    parent, child = pair
    reader = FrameReader()
    child.sendall(struct.pack(">I", 1000) + b'{"type":')  # announces 1000, sends 8, stalls
    began = time.monotonic()
    assert reader.read(parent) == []
    assert reader.read(parent) == []
    assert (
        time.monotonic() - began < 5
    )  # a blocking read would never return; the bound only keeps it from hanging
    child.sendall(b" " * 992)  # control: the rest arrives and the frame is refused as JSON
    with pytest.raises(ProtocolError, match="not JSON"):
        reader.read(parent)


def test_a_child_that_dies_mid_frame_is_a_hang_up_not_a_frame(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    parent, child = pair
    reader = FrameReader()
    child.sendall(frame(b'{"type":"log"}') + struct.pack(">I", 50) + b'{"type":"res')
    child.close()
    assert reader.read(parent) == [({"type": "log"}, 14)]  # the complete frame still counts
    with pytest.raises(HangUpError) as ended:
        reader.read(parent)
    assert ended.value.mid_frame


def test_garbage_on_the_control_socket_is_refused(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    parent, child = pair
    child.sendall(bytes(range(255, -1, -1)))  # a header of 4 GiB, then noise
    with pytest.raises(ProtocolError, match="announced"):
        FrameReader().read(parent)
    child.sendall(frame(bytes(range(256))))  # a plausible header, then noise
    with pytest.raises(ProtocolError, match="not UTF-8"):
        FrameReader().read(parent)


# --- RunWatch: per-entry and total limits, flags --------------------------------------------------
def watch() -> RunWatch:
    return RunWatch(Quotas(timeout_ms=10_000, output_bytes=1000))


def outcome_of(run: RunWatch) -> Any:
    return run.outcome(
        datetime.now(UTC),
        time.monotonic(),
        {},
        0.0,
        0,
        advisory_enforcement("sandbox", "test"),
        RecordingDecider(effective_policy(Permissions())),
    )


def sized(message: dict[str, Any]) -> tuple[dict[str, Any], int]:
    return message, len(encode(message)) - 4


def test_events_are_bounded_in_count_size_and_total() -> None:
    run = watch()
    run.add_event(*sized({"type": "event", "name": "small", "data": 1}))
    run.add_event(*sized({"type": "event", "name": "big", "data": "x" * (MAX_EVENT_BYTES + 1)}))
    assert [e.name for e in run.events] == ["small"] and run.events_truncated
    run = watch()
    for i in range(MAX_EVENTS + 10):
        run.add_event(*sized({"type": "event", "name": f"e{i}", "data": i}))
    assert len(run.events) == MAX_EVENTS and run.events_truncated
    run = watch()
    for _ in range(40):
        run.add_event(*sized({"type": "event", "name": "e", "data": "x" * 60_000}))
    kept = sum(len(json.dumps(e.data)) for e in run.events)
    assert 0 < kept <= MAX_EVENTS_BYTES and len(run.events) < 40 and run.events_truncated


def test_log_lines_are_bounded_in_count_fields_message_and_total() -> None:
    run = watch()
    run.add_log(*sized({"type": "log", "message": "m" * 100_000, "fields": {"k": "v"}}))
    run.add_log(*sized({"type": "log", "message": "ok", "fields": {"k": "v" * 100_000}}))
    first, second = run.log
    assert len(first.message) < MAX_MESSAGE_CHARS + 100 and first.fields == {"k": "v"}
    assert second.message == "ok" and second.fields == {} and run.log_truncated
    run = watch()
    for i in range(MAX_LOG_ENTRIES + 5):
        run.add_log(*sized({"type": "log", "message": str(i)}))
    assert len(run.log) == MAX_LOG_ENTRIES and run.log_truncated
    run = watch()
    for _ in range(600):
        run.add_log(*sized({"type": "log", "message": "m" * 3000, "fields": {"f": "x" * 9000}}))
    assert len(run.log) < 600 and run.log_truncated
    kept = sum(len(e.message) + len(json.dumps(e.fields)) for e in run.log)
    assert kept <= MAX_LOG_BYTES


def test_a_level_or_time_of_the_wrong_kind_does_not_break_the_record() -> None:
    run = watch()
    run.add_log(*sized({"type": "log", "level": {"x": 1}, "message": 5, "at": "soon"}))
    (entry,) = run.log
    assert entry.level == "info" and entry.message == "5" and entry.at > 0


def test_a_result_over_its_limit_fails_the_run_naming_size_and_limit() -> None:
    run = watch()
    big = {"type": "result", "result": "x" * (MAX_RESULT_BYTES + 10), "error": None}
    run.set_result(*sized(big))
    outcome = outcome_of(run)
    assert outcome.status == "failed" and outcome.result is None
    assert outcome.error.type == "ResultTooLarge"
    assert str(MAX_RESULT_BYTES) in outcome.error.message
    assert str(MAX_RESULT_BYTES + 12) in outcome.error.message  # the measured size
    control = watch()
    control.set_result(*sized({"type": "result", "result": {"ok": True}, "error": None}))
    assert outcome_of(control).result == {"ok": True}


def test_an_error_is_clipped_and_flagged() -> None:
    run = watch()
    error = {"type": "T" * 5000, "message": "m" * 1_000_000, "traceback": "t" * 3_000_000}
    run.set_result(*sized({"type": "result", "result": None, "error": error}))
    outcome = outcome_of(run)
    assert outcome.status == "failed" and outcome.error.truncated
    assert len(outcome.error.type) == 200
    assert len(outcome.error.message) < MAX_MESSAGE_CHARS + 100
    assert len(outcome.error.traceback) < MAX_TRACEBACK_CHARS + 100
    control = watch()
    control.set_result(*sized({"type": "result", "error": {"type": "E", "message": "m"}}))
    assert not outcome_of(control).error.truncated


@pytest.mark.parametrize("error", ["just text", ["a", "list"], 42, {"type": None}])
def test_an_error_of_the_wrong_shape_still_fails_the_run(error: Any) -> None:
    run = watch()
    run.set_result(*sized({"type": "result", "result": {"ok": 1}, "error": error}))
    outcome = outcome_of(run)
    assert outcome.status == "failed" and outcome.result is None and outcome.error.type


def test_accesses_are_bounded_in_count_and_per_entry() -> None:
    def access(i: int, target: str) -> dict[str, Any]:
        return {"operation": "fs.read", "target": target, "allowed": False, "rule": f"r{i}"}

    many = [access(i, f"f{i}") for i in range(MAX_ACCESSES * 20)]
    run = watch()
    run.set_result(*sized({"type": "result", "result": None, "accesses": many}))
    outcome = outcome_of(run)
    assert len(outcome.accesses) == MAX_ACCESSES and outcome.accesses_truncated
    huge = [access(0, "x" * (MAX_ACCESS_CHARS + 1)), access(1, "small"), "not an access"]
    run = watch()
    run.set_result(*sized({"type": "result", "result": None, "accesses": huge}))
    outcome = outcome_of(run)
    assert [a.target for a in outcome.accesses] == ["small"] and outcome.accesses_truncated


def test_control_traffic_past_its_limit_kills_the_run() -> None:
    run = watch()
    run.received(MAX_CONTROL_BYTES)
    assert run.kill_reason is None  # control: up to the limit is fine
    run.received(MAX_CONTROL_BYTES + 1)
    outcome = outcome_of(run)
    assert outcome.status == "killed" and outcome.kill_reason == "output"
    assert str(MAX_CONTROL_BYTES) in outcome.error.message


def test_a_violation_fails_the_run_as_protocol_violation() -> None:
    run = watch()
    run.violate("a frame announced 99 bytes; the limit is 4")
    outcome = outcome_of(run)
    assert outcome.status == "failed" and outcome.error.type == "ProtocolViolation"
    assert "announced 99 bytes" in outcome.error.message


# --- the child's side: a clear error for an honest job --------------------------------------------
def test_json_result_refuses_deep_and_surrogate_results_with_a_reason() -> None:
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    assert json_result(deep)[1].type == "ResultTooDeep"
    very_deep: Any = []
    for _ in range(50_000):
        very_deep = [very_deep]
    assert json_result(very_deep)[1].type == "ResultTooDeep"  # json.dumps' RecursionError
    assert "surrogate" in json_result({"name": "\udcff"})[1].message
    assert json_result({"nan": float("nan")})[1].type == "ResultNotSerialisable"
    assert json_result({"ok": [[["fine"]]]}) == ({"ok": [[["fine"]]]}, None)  # control


def test_the_child_channel_refuses_early_and_keeps_its_result_frame_within_the_limit(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    from plugbox.sandbox.channel import ChildChannel
    from plugbox.sdk import LogRecord

    parent, child = pair
    channel = ChildChannel(child)
    deep: Any = 1
    for _ in range(500):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper than"):
        channel.event("deep", deep)
    with pytest.raises(ValueError, match=f"the limit is {MAX_EVENT_BYTES}"):
        channel.event("big", "x" * (MAX_EVENT_BYTES + 1))
    with pytest.raises(ValueError, match="the fields of this log line"):
        channel.log(LogRecord("info", "m", {"blob": "x" * 100_000}, 1.0))
    # 1,000 accesses of 4,000 non-ASCII characters: 24 MB once escaped, cut to fit.
    accesses = [
        {"operation": "fs.read", "target": f"{i}" + "é" * 4000, "allowed": True, "rule": "r"}
        for i in range(1000)
    ]
    accesses.insert(0, {"operation": "fs.read", "target": "a", "allowed": True, "rule": "r"})
    channel.result({"result": {"ok": True}, "error": None, "accesses": accesses})
    channel.event("fine", {"n": 1})  # control: what fits is sent
    reader, frames = FrameReader(), []
    while len(frames) < 2:
        frames += reader.read(parent)
    (result, size), (event, _) = frames
    assert size <= MAX_CHILD_FRAME
    assert result["accesses"] == accesses[:1] and result["accesses_truncated"] is True
    assert event == {"type": "event", "name": "fine", "data": {"n": 1}}
