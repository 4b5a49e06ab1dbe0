"""Fixtures for webhook tests: a receiver on 127.0.0.1 that checks Standard Webhooks signatures as a stranger would.

The check is written from the spec (https://www.standardwebhooks.com/), not with plugbox's own
signing code, so a mistake there cannot hide itself. Each path answers from a script:
``fail_first`` 500s per delivery id, then 200; ``silent`` paths never answer until closed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SECRET = "whsec_" + base64.b64encode(b"plugbox-test-key-32-bytes-long!!").decode()
TOLERANCE_S = 300


@dataclass
class Received:
    path: str
    delivery_id: str
    body: dict[str, Any]
    signature_ok: bool
    answered: int


@dataclass
class Receiver:
    fail_first: int = 0
    silent_paths: frozenset[str] = frozenset()
    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.path in receiver.silent_paths:
                    receiver.note(self.path, self.headers, body, 0)
                    receiver._release.wait()
                    return
                code = receiver.answer(self.path, self.headers, body)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def verify(self, headers: Any, body: bytes) -> bool:
        msg_id, stamp, signatures = (
            headers["webhook-id"],
            headers["webhook-timestamp"],
            headers["webhook-signature"],
        )
        if abs(time.time() - int(stamp)) > TOLERANCE_S:
            return False
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        return any(
            hmac.compare_digest(sig.removeprefix("v1,"), expected)
            for sig in signatures.split(" ")
            if sig.startswith("v1,")
        )

    def note(self, path: str, headers: Any, body: bytes, code: int) -> None:
        with self._lock:
            self.received.append(
                Received(
                    path, headers["webhook-id"], json.loads(body), self.verify(headers, body), code
                )
            )

    def answer(self, path: str, headers: Any, body: bytes) -> int:
        with self._lock:
            seen = self._seen.get(headers["webhook-id"], 0)
            self._seen[headers["webhook-id"]] = seen + 1
        code = 500 if seen < self.fail_first else 200
        if not self.verify(headers, body):
            code = 401
        self.note(path, headers, body, code)
        return code

    def of(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(fail_first=2, silent_paths=frozenset({"/silent"})).start()
    try:
        yield found
    finally:
        found.close()
