"""The child's end of the control channel: logs, events, network requests and the final result.

One socketpair per run connects the confined child to the parent. The child streams each log line
and event as it happens (so a run killed at its timeout still has its log), asks the parent's
broker for every HTTP request, and sends its result last. Results never travel over stdout, which
the job owns.

The parent bounds and validates every frame (:mod:`plugbox.sandbox.run_watch`); the checks here
only repeat the cheap ones, so that an honest job hears *why* at the call that went too far
instead of finding its record cut or its run failed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import socket
import threading
from typing import Any

from plugbox.sandbox.net_request import MAX_REQUEST_BODY, NetRequest
from plugbox.sandbox.outcome import (
    MAX_ACCESS_CHARS,
    MAX_ACCESSES_BYTES,
    MAX_EVENT_BYTES,
    MAX_LOG_FIELDS_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    clip,
)
from plugbox.sandbox.protocol import MAX_CHILD_FRAME, MAX_VALUE_DEPTH, depth_of, encode, receive
from plugbox.sdk import HttpResponse, LogRecord, PermissionDenied


class ChildChannel:
    """Thread-safe sender/requester used by the job's runtime inside the child."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def log(self, record: LogRecord) -> None:
        """Send one log line; fields too large or too deep are refused with ``ValueError``."""
        fields = _bounded(dict(record.fields), "the fields of this log line", MAX_LOG_FIELDS_BYTES)
        self._send(
            {
                "type": "log",
                "level": record.level,
                "message": clip(record.message, MAX_MESSAGE_CHARS),
                "fields": fields,
                "at": record.at,
            }
        )

    def event(self, name: str, data: Any) -> None:
        """Send one event; data too large or too deep is refused with ``ValueError``."""
        data = _bounded(data, f"the data of event {name!r}", MAX_EVENT_BYTES)
        self._send({"type": "event", "name": name[:MAX_NAME_CHARS], "data": data})

    def result(self, payload: dict[str, Any]) -> None:
        """Send the final result; an access list over its limits is cut and flagged."""
        accesses, cut = _bounded_accesses(payload.get("accesses") or [])
        payload = {**payload, "accesses": accesses}
        payload["accesses_truncated"] = bool(payload.get("accesses_truncated")) or cut
        self._send({"type": "result", **payload})

    def net(self, request: NetRequest) -> HttpResponse:
        if request.body is not None and len(request.body) > MAX_REQUEST_BODY:
            raise ValueError(
                f"the request body is {len(request.body)} bytes; runtime.net sends at most "
                f"{MAX_REQUEST_BODY}"
            )
        message = {
            "type": "net",
            "method": request.method,
            "url": request.url,
            "headers": dict(request.headers),
            "body": base64.b64encode(request.body).decode() if request.body is not None else None,
            "timeout": request.timeout,
        }
        frame = _frame(_jsonable(message))
        with self._lock:
            self._sock.sendall(frame)
            reply, _ = receive(self._sock)
        if "error" in reply:
            error = reply["error"]
            if error.get("type") == "PermissionDenied":
                raise PermissionDenied(
                    error["operation"], error["target"], error["rule"], error.get("reason", "")
                )
            raise OSError(error.get("message", "the network request failed"))
        return HttpResponse(
            status=int(reply["status"]),
            headers=dict(reply["headers"]),
            content=base64.b64decode(reply["body"]),
            url=str(reply["url"]),
        )

    def _send(self, message: dict[str, Any]) -> None:
        frame = _frame(_jsonable(message))
        # A parent that is gone or has stopped listening has nothing left to be told.
        with self._lock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._sock.sendall(frame)


def _frame(message: dict[str, Any]) -> bytes:
    frame = encode(message)
    if len(frame) > MAX_CHILD_FRAME:
        raise ValueError(
            f"a {message.get('type')} message of {len(frame)} bytes is larger than the "
            f"{MAX_CHILD_FRAME}-byte limit of the control channel"
        )
    return frame


def _bounded(value: Any, what: str, limit: int) -> Any:
    """``value`` as JSON data, or ``ValueError`` naming ``what`` when it nests or weighs too much."""
    if depth_of(value) > MAX_VALUE_DEPTH:
        raise ValueError(f"{what} nests deeper than {MAX_VALUE_DEPTH} levels of lists and dicts")
    value = _jsonable(value)
    size = len(encode({"v": value})) - 10  # the frame around it: header and {"v":...}
    if size > limit:
        raise ValueError(f"{what} is {size} bytes of JSON; the limit is {limit}")
    return value


def _bounded_accesses(raw: list[Any]) -> tuple[list[Any], bool]:
    """The access list within the parent's limits, measured as sent (escaped JSON bytes, never
    fewer than characters), so the result frame always fits the channel."""
    kept: list[Any] = []
    total = 0
    cut = False
    for access in raw:
        size = len(json.dumps(_jsonable(access)))
        if size > MAX_ACCESS_CHARS:
            cut = True
            continue
        if total + size > MAX_ACCESSES_BYTES:
            return kept, True
        total += size
        kept.append(access)
    return kept, cut


def _jsonable(value: Any) -> Any:
    """``value`` as what the parent accepts: JSON, finite numbers, text that UTF-8 can hold."""
    if isinstance(value, dict):
        return {_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return _text(repr(value))


def _text(text: str) -> str:
    # A lone surrogate (a file name decoded with surrogateescape) would be refused by the parent.
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")
