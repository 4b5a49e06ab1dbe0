"""Local HTTP servers that misbehave in time: the network a deadline must not wait for."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class SlowServer:
    """A listening socket on 127.0.0.1 whose connections are answered by ``mode``.

    ``trickle``: status and headers at once, then one body byte every ``every`` seconds;
    ``silent``: accept, read the request, never answer; ``big``: a ``size``-byte body at once.
    ``hits`` counts requests that arrived (the proof a job really asked).
    """

    mode: str
    every: float = 0.5
    size: int = 0
    hits: int = 0
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                self.hits += 1
                if self.mode == "silent":
                    self._stop.wait(120)
                elif self.mode == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    while not self._stop.wait(self.every):
                        conn.sendall(b"x")
                elif self.mode == "big":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
                    chunk = b"x" * 65536
                    for _ in range(self.size // len(chunk) + 1):
                        conn.sendall(chunk)
            except OSError:
                pass


@contextmanager
def slow_server(mode: str, **options: float) -> Iterator[SlowServer]:
    server = SlowServer(mode, **options)  # type: ignore[arg-type]
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]
    thread = threading.Thread(target=server._serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._stop.set()
        thread.join(timeout=5)
        listener.close()
        time.sleep(0)
