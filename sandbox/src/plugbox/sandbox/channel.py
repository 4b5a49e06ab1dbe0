"""The child's end of the control channel: logs, events, network requests and the final result.

One socketpair per run connects the confined child to the parent. The child streams each log line
and event as it happens (so a run killed at its timeout still has its log), asks the parent's
broker for every HTTP request, and sends its result last. Results never travel over stdout, which
the job owns.
"""

from __future__ import annotations

import base64
import contextlib
import math
import socket
import threading
from typing import Any

from plugbox.sandbox.net_request import NetRequest
from plugbox.sandbox.protocol import receive, send
from plugbox.sdk import HttpResponse, LogRecord, PermissionDenied


class ChildChannel:
    """Thread-safe sender/requester used by the job's runtime inside the child."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def log(self, record: LogRecord) -> None:
        fields = dict(record.fields)
        self._send(
            {
                "type": "log",
                "level": record.level,
                "message": record.message,
                "fields": fields,
                "at": record.at,
            }
        )

    def event(self, name: str, data: Any) -> None:
        self._send({"type": "event", "name": name, "data": data})

    def result(self, payload: dict[str, Any]) -> None:
        self._send({"type": "result", **payload})

    def net(self, request: NetRequest) -> HttpResponse:
        message = {
            "type": "net",
            "method": request.method,
            "url": request.url,
            "headers": dict(request.headers),
            "body": base64.b64encode(request.body).decode() if request.body is not None else None,
            "timeout": request.timeout,
        }
        with self._lock:
            send(self._sock, message)
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
        # A parent that is gone or has stopped listening has nothing left to be told.
        with self._lock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send(self._sock, _jsonable(message))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
