"""Class F: the parent trusts what the child sends.

Each job writes to its control socket itself — the socket every job can reach through its own
``ctx`` — bypassing the checks of the child's channel, as the review did: frames too large,
lying about their size, not JSON, holding ``NaN``, nested 100,000 deep, or simply too many. A job
first writes ``.plugbox/eve/<job>.ran`` (the proof its attack code ran), then attacks, then
waits: a parent that did not stop it would see the run reach its timeout instead.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

_MiB = 1024 * 1024
_PERMISSIONS = perms.presets.plugin_workspace("eve")
JOBS: list[Any] = []


def _channel(ctx: JobContext) -> Any:
    # ctx.emit is the collector's bound method, and the collector holds the channel.
    return ctx._emit.__self__._channel  # type: ignore[attr-defined]


def send_raw(ctx: JobContext, payload: bytes, *, announce: int | None = None) -> None:
    """Write one frame (or just what ``announce`` claims) straight to the control socket."""
    channel = _channel(ctx)
    header = struct.pack(">I", len(payload) if announce is None else announce)
    with channel._lock:
        channel._sock.sendall(header + payload)


def _ran(ctx: JobContext) -> None:
    ctx.runtime.fs.write_text(f".plugbox/eve/{ctx.job_id}.ran", f"{os.getpid()}\n")


def frames_job(name: str, timeout: str = "20s") -> Callable[[Any], Any]:
    """A job that marks it ran, runs the attack, then waits out its timeout if not stopped."""

    def wrap(attack: Callable[[JobContext], Any]) -> Any:
        def handler(ctx: JobContext) -> Any:
            _ran(ctx)
            value = attack(ctx)
            if value is not None:
                return value
            time.sleep(60)
            return {"not stopped": True}

        # Named as the module attribute it becomes, so the child imports it by that name.
        handler.__name__ = handler.__qualname__ = attack.__name__
        handler.__doc__ = attack.__doc__
        spec = job(name, schedule="@daily", timeout=timeout, permissions=_PERMISSIONS)(handler)
        JOBS.append(spec)
        return spec

    return wrap


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- size ---------------------------------------------------------------------------------------
@frames_job("frames-result-20mib")
def result_20mib(ctx: JobContext) -> None:
    send_raw(ctx, _json({"type": "result", "result": "x" * (20 * _MiB), "error": None}))


@frames_job("frames-result-3mib")
def result_3mib(ctx: JobContext) -> None:
    send_raw(ctx, _json({"type": "result", "result": "x" * (3 * _MiB), "error": None}))


@frames_job("frames-result-honest-20mib")
def result_honest_20mib(ctx: JobContext) -> Any:
    return "x" * (20 * _MiB)


@frames_job("frames-error-huge")
def error_huge(ctx: JobContext) -> None:
    error = {"type": "E" * 10_000, "message": "m" * (1 * _MiB), "traceback": "t" * (2 * _MiB)}
    send_raw(ctx, _json({"type": "result", "result": None, "error": error}))


@frames_job("frames-accesses-19mib")
def accesses_19mib(ctx: JobContext) -> None:
    access = {"operation": "fs.read", "target": "t" * 1000, "allowed": False, "rule": "r"}
    send_raw(ctx, _json({"type": "result", "result": {}, "accesses": [access] * 19_000}))


@frames_job("frames-accesses-many")
def accesses_many(ctx: JobContext) -> None:
    many = [
        {"operation": "fs.read", "target": f"f{i}-" + "t" * 400, "allowed": False, "rule": "r"}
        for i in range(5000)
    ]
    huge = {"operation": "fs.read", "target": "h" * 100_000, "allowed": False, "rule": "r"}
    frame = {"type": "result", "result": {"sent": len(many) + 1}, "accesses": [huge, *many]}
    send_raw(ctx, _json(frame))


@frames_job("frames-events-flood")
def events_flood(ctx: JobContext) -> Any:
    honest = attempt(ctx.emit, "too-big", "x" * (100 * 1024))  # the channel refuses it
    for i in range(3000):
        ctx.emit("small", i)
    for _ in range(3):
        send_raw(ctx, _json({"type": "event", "name": "huge", "data": "x" * _MiB}))
    for _ in range(100):
        send_raw(ctx, _json({"type": "event", "name": "big", "data": "x" * 60_000}))
    return report({"sent": 3000 + 3 + 100}, honest_too_big=honest)


@frames_job("frames-log-flood")
def log_flood(ctx: JobContext) -> Any:
    honest = attempt(ctx.logger.info, "fields too big", blob="x" * (100 * 1024))
    for i in range(3000):
        ctx.logger.info("line", i=i)
    for _ in range(3):
        send_raw(ctx, _json({"type": "log", "message": "m" * _MiB, "fields": {}, "at": 1.0}))
        send_raw(ctx, _json({"type": "log", "message": "f", "fields": {"x": "x" * _MiB}}))
    return report({"sent": 3006}, honest_fields_too_big=honest)


@frames_job("frames-control-flood")
def control_flood(ctx: JobContext) -> None:
    line = _json({"type": "log", "message": "x", "fields": {"pad": "p" * 60_000}})
    for _ in range(1200):  # 72 MB of log frames, each one small enough
        send_raw(ctx, line)


# --- not JSON, or not what JSON allows ------------------------------------------------------------
@frames_job("frames-nan-result")
def nan_result(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"result","result":{"value":NaN},"error":null}')


@frames_job("frames-infinity-event")
def infinity_event(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"event","name":"x","data":[Infinity]}')


@frames_job("frames-infinity-log-field")
def infinity_log_field(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"log","message":"x","fields":{"f":-Infinity}}')


@frames_job("frames-overflow-result")
def overflow_result(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"result","result":1e999,"error":null}')


@frames_job("frames-honest-nan")
def honest_nan(ctx: JobContext) -> Any:
    ctx.emit("inf", {"v": float("inf")})  # JSON cannot say it: the channel sends "inf"
    ctx.logger.info("nan", v=float("nan"))
    return {"value": float("nan")}  # refused in the child, with the reason


@frames_job("frames-lone-surrogate")
def lone_surrogate(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"log","message":"\\ud800","fields":{}}')


@frames_job("frames-deep-raw-event")
def deep_raw_event(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"event","name":"deep","data":' + _deep(100_000) + b"}")


@frames_job("frames-deep-raw-result")
def deep_raw_result(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"result","error":null,"result":' + _deep(200) + b"}")


@frames_job("frames-deep-emit")
def deep_emit(ctx: JobContext) -> Any:
    deep: Any = 1
    for _ in range(500):
        deep = [deep]
    refused = attempt(ctx.emit, "deep", deep)
    ctx.emit("shallow", [[["ok"]]])
    return report({"depth": 500}, deep_emit=refused)


@frames_job("frames-deep-return")
def deep_return(ctx: JobContext) -> Any:
    deep: Any = 1
    for _ in range(500):
        deep = {"d": deep}
    return deep


@frames_job("frames-garbage")
def garbage(ctx: JobContext) -> None:
    send_raw(ctx, b"GARBAGE!" + bytes(range(256)))


@frames_job("frames-huge-header")
def huge_header(ctx: JobContext) -> None:
    send_raw(ctx, b"", announce=0xFFFFFFFF)


@frames_job("frames-lying-header", timeout="3s")
def lying_header(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"res', announce=1000)  # announces 1000 bytes, sends 12, stalls


@frames_job("frames-die-mid-frame")
def die_mid_frame(ctx: JobContext) -> None:
    send_raw(ctx, b'{"type":"result","res', announce=1000)
    os._exit(3)


@frames_job("frames-unknown-type")
def unknown_type(ctx: JobContext) -> None:
    send_raw(ctx, _json({"type": "exec", "argv": ["/bin/sh"]}))
