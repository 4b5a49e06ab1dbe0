"""Classes D and I of issue 9: a job reaches a unix socket that is not its own.

Layer: seccomp — connect, bind and listen answer EPERM (Landlock has no hook on a pathname
connect; abstract scoping does not cover bind), and unix datagram sockets cannot be created (an
unconnected one sends to any path). The job's socketpairs and asyncio keep working.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import pytest

from .conftest import Host


@pytest.fixture
def host_sockets(host: Host) -> Iterator[tuple[socket.socket, socket.socket]]:
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(str(host.victim / "host.sock"))
    stream.listen(8)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(host.victim / "dgram.sock"))
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(b"\0plugbox-host-abstract")
    abstract.listen(8)
    for name in ("host.sock", "dgram.sock"):
        os.chmod(host.victim / name, 0o777)  # only the kernel layers stand in the way
    for sock in (stream, dgram, abstract):
        sock.setblocking(False)
    try:
        yield stream, dgram
    finally:
        for sock in (stream, dgram, abstract):
            sock.close()


def test_unix_sockets_outside_the_run_are_unreachable(
    host: Host, host_sockets: tuple[socket.socket, socket.socket]
) -> None:
    stream, dgram = host_sockets
    attack = host.attack("unix-sockets")
    assert attack.control == {"socketpair": "pair", "asyncio": 7}  # ran; socketpairs work
    for name in ("connect_path", "connect_seqpacket", "connect_abstract", "bind_abstract",
                 "bind_path", "listen", "dgram_sendto", "dgram_socket", "raw_socket",
                 "dgram_socketpair"):  # fmt: skip
        attack.stopped(name, errno.EPERM)
    with pytest.raises(BlockingIOError):
        stream.accept()  # nobody connected
    with pytest.raises(BlockingIOError):
        dgram.recv(64)  # nothing arrived
    assert not (host.workspace / ".plugbox" / "eve" / "eve.sock").exists()
