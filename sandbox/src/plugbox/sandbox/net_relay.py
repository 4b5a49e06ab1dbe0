"""A run's network requests, performed off its watch loop so that the deadline never waits.

The watch loop (:mod:`plugbox.sandbox.run_loop`) hands each ``net`` message of the child to
:meth:`NetRelay.submit` and goes back to enforcing the timeout, CPU, memory and cancellation. A
thread per request performs it through the broker, bounded by what is left of the run; its reply
is queued and the loop is woken through a pipe to send it. When the run ends, :meth:`close`
shuts down every connection still open: a slow server keeps no thread of ours for long, and a
killed run abandons its requests.

At most :data:`MAX_IN_FLIGHT` requests of a run are in flight at once. The child's channel sends
one at a time, so only a job writing its own frames meets the limit; its extra requests are
answered with an error at once.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import threading
import time
from typing import Any

from plugbox.sandbox.broker import NetBroker
from plugbox.sandbox.net_request import DEFAULT_TIMEOUT_S, NetRequest
from plugbox.sdk import PermissionDenied

MAX_IN_FLIGHT = 2


class NetRelay:
    """One run's requests in flight and their replies waiting to be sent."""

    def __init__(self, broker: NetBroker) -> None:
        self._broker = broker
        self._replies: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake: tuple[int, int] | None = None
        self._closed = False
        self.in_flight = 0

    def wake_fd(self) -> int:
        """A descriptor that turns readable when a reply is ready (made on first use)."""
        with self._lock:
            if self._wake is None:
                self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            return self._wake[0]

    def submit(self, message: dict[str, Any], time_left: float | None) -> dict[str, Any] | None:
        """Start performing ``message``; an immediate error reply when too many are in flight."""
        if self.in_flight >= MAX_IN_FLIGHT:
            return _error(
                "OSError", f"more than {MAX_IN_FLIGHT} network requests at once; wait for a reply"
            )
        self.in_flight += 1
        threading.Thread(
            target=self._perform, args=(message, time_left), name="plugbox-net", daemon=True
        ).start()
        return None

    def replies(self) -> list[dict[str, Any]]:
        """The replies that are ready (each one frees its place in flight)."""
        with self._lock:
            if self._wake is not None:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake[0], 4096)
        ready = []
        while True:
            try:
                ready.append(self._replies.get_nowait())
            except queue.Empty:
                break
        self.in_flight -= len(ready)
        return ready

    def expire(self, now: float) -> None:
        """Shut down connections held past their deadline (a server trickling its headers)."""
        self._broker.expire(now)

    def close(self) -> None:
        """The run is over: abandon every request still in flight."""
        self._broker.abort()
        with self._lock:
            self._closed = True
            wake, self._wake = self._wake, None
        if wake is not None:
            for fd in wake:
                os.close(fd)

    def _perform(self, message: dict[str, Any], time_left: float | None) -> None:
        reply = relay_net_request(self._broker, message, time_left)
        self._replies.put(reply)
        with self._lock:
            # Under the lock: after close() the descriptor number may belong to another file.
            if self._wake is not None and not self._closed:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake[1], b"!")


def relay_net_request(
    broker: NetBroker, message: dict[str, Any], time_left: float | None
) -> dict[str, Any]:
    """Perform one ``net`` message of a child and build the reply it gets (never raises)."""
    try:
        body = base64.b64decode(message["body"]) if message.get("body") is not None else None
        timeout = float(message.get("timeout") or DEFAULT_TIMEOUT_S)
        if not timeout > 0:
            timeout = DEFAULT_TIMEOUT_S
        if time_left is not None:
            timeout = max(0.01, min(timeout, time_left))
        response = broker.perform(
            NetRequest(
                str(message["method"]),
                str(message["url"]),
                {str(k): str(v) for k, v in dict(message.get("headers") or {}).items()},
                body,
                timeout,
            ),
            deadline=time.monotonic() + timeout,
        )
    except PermissionDenied as denied:
        return {
            "error": {
                "type": "PermissionDenied",
                "operation": denied.operation,
                "target": denied.target,
                "rule": denied.rule,
                "reason": denied.reason,
            }
        }
    except Exception as exc:
        # The child raises an OSError with this message: name the kind only when it says more.
        kind = type(exc).__name__
        text = str(exc) if type(exc) is OSError else f"{kind}: {exc}"
        return _error(kind, text)
    return {
        "status": response.status,
        "headers": dict(response.headers),
        "body": base64.b64encode(response.content).decode(),
        "url": response.url,
    }


def _error(kind: str, text: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": text}}
