"""Framed JSON messages over Unix sockets, with optional descriptor passing.

Every byte that crosses from a confined child to the parent is untrusted, so the wire format is
deliberately dull: a 4-byte big-endian length, then a UTF-8 JSON object, never pickle. A frame
larger than the reader's limit is refused without being buffered, so a child cannot make the
parent allocate what it likes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")
#: Largest frame accepted by default (result, log batch, HTTP body are bounded well below it).
MAX_FRAME = 32 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame (or hung up mid-frame)."""


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one message; ``fds`` ride along with the first byte (SCM_RIGHTS)."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    frame = _HEADER.pack(len(payload)) + payload
    if fds:
        sent = socket.send_fds(sock, [frame[:1]], fds)
        if sent != 1:
            raise ProtocolError("could not send the descriptors")
        sock.sendall(frame[1:])
    else:
        sock.sendall(frame)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def receive(
    sock: socket.socket, *, max_frame: int = MAX_FRAME, max_fds: int = 0
) -> tuple[dict[str, Any], list[int]]:
    """Receive one message (and up to ``max_fds`` descriptors). ``EOFError`` on a clean hang-up."""
    fds: list[int] = []
    if max_fds:
        first, fds, _flags, _addr = socket.recv_fds(sock, 1, max_fds)
        if not first:
            for fd in fds:
                _close(fd)
            raise EOFError("peer closed the connection")
        header = first + _recv_exact(sock, _HEADER.size - 1)
    else:
        header = _recv_exact(sock, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > max_frame:
        raise ProtocolError(f"frame of {size} bytes is larger than the {max_frame}-byte limit")
    try:
        message = json.loads(_recv_exact(sock, size))
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"frame is not JSON: {err}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message, fds


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
