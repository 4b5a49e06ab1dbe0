"""Serving the API from ``plugbox serve``: uvicorn in a thread beside the scheduler loop.

The socket is bound first, in the calling thread, so a taken port or a bad address stops
``serve`` at once with a clear message, before the scheduler fires anything; uvicorn then serves
on that socket in its own thread and event loop (uvicorn leaves signal handling to the main
thread, where the daemon has it). :meth:`HttpServer.stop` asks uvicorn to exit and waits for it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import anyio
import uvicorn
from fastapi import FastAPI

from plugbox.host.config.models import parse_listen

#: How long stopping waits for requests in flight (a ``?wait=true`` trigger, say).
GRACEFUL_S = 5
#: How long an idle keep-alive connection stays open. uvicorn's default (5 s) equals httpx's
#: (and many clients') keep-alive expiry, so a client sending its next request just as the
#: server gives up on the connection got it closed under it (``httpx.ReadError``), which a busy
#: machine made common. The server must outwait its clients (ADR 0031).
KEEP_ALIVE_S = 75
#: Connections the kernel queues while the server is busy accepting others.
BACKLOG = 1024
#: Threads answering requests' blocking work (AnyIO's default is 40). They share one GIL with
#: the scheduler: forty threads busy rendering run pages left the scheduler a fortieth of it,
#: and scheduled runs started seconds late (ADR 0031). More threads would not answer faster.
API_THREADS = 8


class _Server(uvicorn.Server):
    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
        await super().serve(sockets)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


class ListenError(OSError):
    """The API cannot listen where it was asked to."""


class HttpServer:
    def __init__(self, listen: str) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError as err:
            sock.close()
            raise ListenError(
                f"cannot listen on {listen}: {err.strerror or err}; choose another address with"
                " --listen HOST:PORT or [http] listen in plugbox.toml, or --no-http"
            ) from None
        sock.set_inheritable(False)
        self._socket = sock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """Where it listens, with the port the kernel chose for port 0."""
        host, port = self._socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_S,
            timeout_keep_alive=KEEP_ALIVE_S,
            backlog=BACKLOG,
            lifespan="off",
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="plugbox-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=GRACEFUL_S + 5)
        self._socket.close()
