"""Framed JSON messages over Unix sockets, with optional descriptor passing.

Every byte that crosses from a confined child to the parent is untrusted, so the wire format is
deliberately dull: a 4-byte big-endian length, then a UTF-8 JSON object, never pickle. What the
parent accepts from a child is checked here, before any other code sees it:

- a frame larger than the reader's limit is refused from its header, never buffered;
- the payload must be strict UTF-8 holding one JSON object;
- ``NaN``, ``Infinity`` and numbers that overflow to them are refused (they are not JSON, and a
  record holding one prints as invalid JSON);
- nesting deeper than :data:`MAX_DEPTH` is refused (everything downstream — pydantic, the store,
  ``json.dumps`` — recurses, and a ``RecursionError`` in the host would lose the run);
- lone UTF-16 surrogates (``"\\ud800"``) are refused: no UTF-8 encoder can write them later.

:class:`FrameReader` reads a child's frames without ever blocking, so a child that announces a
frame and then stalls cannot hold the parent's watch loop past the run's deadline.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")
#: Largest frame accepted by default: what the parent sends a child (an HTTP reply of up to 10 MiB,
#: base64) and what the zygote and the parent tell each other.
MAX_FRAME = 32 * 1024 * 1024
#: Largest frame the parent accepts from a run child. A result is at most 1 MiB of JSON, the
#: access list 1 MiB, an error about 300 KiB; nothing honest comes near it.
MAX_CHILD_FRAME = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects in a frame (the frame's own object is level 1).
MAX_DEPTH = 64
#: How deep a job's own value (a result, event data, a log field) may nest inside its frame.
MAX_VALUE_DEPTH = MAX_DEPTH - 4
_READ_CHUNK = 1 << 16
#: Bytes one :meth:`FrameReader.read` call takes before returning, so other work gets a turn.
_READ_BUDGET = 1 << 20
# A \u escape of a surrogate: only frames holding one need the walk for a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame; the message says what was wrong."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as a frame (refuses non-finite numbers, as :func:`decode` does)."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return _HEADER.pack(len(payload)) + payload


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one message; ``fds`` ride along with the first byte (SCM_RIGHTS)."""
    frame = encode(message)
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
    """Receive one message (and up to ``max_fds`` descriptors), blocking.

    ``EOFError`` on a hang-up; :class:`ProtocolError` for anything that is not a valid frame.
    Only for peers that cannot stall the caller's deadline (the zygote, or a child waiting on its
    parent); the parent reads a run child with :class:`FrameReader`.
    """
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
        raise ProtocolError(f"a frame of {size} bytes is larger than the {max_frame}-byte limit")
    return decode(_recv_exact(sock, size)), fds


def decode(payload: bytes) -> dict[str, Any]:
    """The JSON object in ``payload``, or :class:`ProtocolError` saying why it is not acceptable."""
    try:
        text = payload.decode("utf-8")  # strict: UTF-8-encoded surrogates are refused here
    except UnicodeDecodeError as err:
        raise ProtocolError(f"the frame is not UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        message = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ProtocolError(f"the frame nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:
        raise ProtocolError(f"the frame is not JSON ({err})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"the frame is a JSON {type(message).__name__}, not an object")
    # Counting brackets (inside strings too) is a cheap upper bound: almost every frame stops here.
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    if deep or has_surrogate_escape(text):
        _check_value(message)
    return message


def has_surrogate_escape(text: str) -> bool:
    """Whether JSON ``text`` escapes a surrogate (a pair, or a lone one that no UTF-8 can hold)."""
    return _SURROGATE_ESCAPE.search(text) is not None


def _refuse_constant(name: str) -> Any:
    raise ProtocolError(f"the frame holds {name}, which is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"the frame holds {text[:40]}, a number too large for a float")
    return value


def _check_value(root: Any) -> None:
    """Depth and lone surrogates, walked with an explicit stack (no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
            for key in value:
                _check_text(key)
        elif isinstance(value, list):
            children = value
        else:
            if isinstance(value, str):
                _check_text(value)
            continue
        if depth > MAX_DEPTH:
            raise ProtocolError(f"the frame nests deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise ProtocolError("the frame holds a lone UTF-16 surrogate, which no UTF-8 text can hold")


def depth_of(root: Any) -> int:
    """How deep ``root`` nests (a scalar is 0, ``[]`` is 1), walked without recursion.

    Stops counting past :data:`MAX_DEPTH`, so a hostile value costs no more than a deep one.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


class FrameReader:
    """Reads a run child's frames from a non-blocking socket, a chunk at a time.

    The length is checked as soon as the header is in, so an oversized frame is refused before
    one byte of it is kept; a frame is decoded only once it is complete, so a child that stalls
    mid-frame costs the parent nothing but the bytes it already sent.
    """

    def __init__(self, max_frame: int = MAX_CHILD_FRAME) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self.received = 0

    def read(self, sock: socket.socket) -> list[tuple[dict[str, Any], int]]:
        """Every frame completed by what the socket has now, each with its size in bytes.

        ``EOFError`` when the child hung up (``mid_frame`` says whether it left a frame
        unfinished); :class:`ProtocolError` for an invalid frame.
        """
        frames: list[tuple[dict[str, Any], int]] = []
        taken = 0
        while taken < _READ_BUDGET:
            try:
                chunk = sock.recv(_READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                frames.extend(self._frames())
                if frames:
                    return frames  # the hang-up is seen again on the next read
                raise HangUpError(mid_frame=bool(self._buffer))
            taken += len(chunk)
            self.received += len(chunk)
            self._buffer += chunk
            frames.extend(self._frames())
        return frames

    def _frames(self) -> list[tuple[dict[str, Any], int]]:
        frames = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self._max_frame:
                raise ProtocolError(
                    f"a frame announced {size} bytes; the limit is {self._max_frame}"
                )
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            frames.append((decode(payload), size))
        return frames


class HangUpError(EOFError):
    """The peer closed its end; ``mid_frame`` when it left part of a frame behind."""

    def __init__(self, *, mid_frame: bool) -> None:
        super().__init__(
            "the peer closed the connection in the middle of a frame"
            if mid_frame
            else "the peer closed the connection"
        )
        self.mid_frame = mid_frame


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
