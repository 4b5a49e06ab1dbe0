"""Unix sockets (issue 9, classes D and I): the only family a run can create.

A pathname socket (``/run/docker.sock``, another plugin's) is reachable by name — Landlock has
no connect hook — and an abstract name can be bound ahead of its owner. The test listens on
``victim/host.sock`` (stream) and ``victim/dgram.sock`` (datagram).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report, victim


def _connect(address: str | bytes, kind: int = socket.SOCK_STREAM) -> None:
    with socket.socket(socket.AF_UNIX, kind) as sock:
        sock.connect(address)


def _bind(address: str | bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(address)


def _listen() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.listen()


def _sendto(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"from eve", path)


def _control() -> dict[str, Any]:
    """What a job may still do: a socketpair, and asyncio (its self-pipe is a socketpair)."""
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"pair")
        pair = right.recv(16).decode()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe, args=(done.set_result, 7)).start()
        return await asyncio.wait_for(done, 5)

    return {"socketpair": pair, "asyncio": asyncio.run(main())}


@job("unix-sockets", schedule="@daily", timeout="30s",
     permissions=perms.presets.plugin_workspace("eve"))  # fmt: skip
def unix_sockets(ctx: JobContext) -> dict[str, Any]:
    return report(
        _control(),
        connect_path=attempt(_connect, victim("host.sock")),
        connect_seqpacket=attempt(_connect, victim("host.sock"), socket.SOCK_SEQPACKET),
        connect_abstract=attempt(_connect, b"\0plugbox-host-abstract"),
        bind_abstract=attempt(_bind, b"\0plugbox-mallory-lock"),
        bind_path=attempt(_bind, ".plugbox/eve/eve.sock"),
        listen=attempt(_listen),
        dgram_sendto=attempt(_sendto, victim("dgram.sock")),
        dgram_socket=attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()),
        raw_socket=attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_RAW).close()),
        dgram_socketpair=attempt(socket.socketpair, socket.AF_UNIX, socket.SOCK_DGRAM),
    )


JOBS = [unix_sockets]
