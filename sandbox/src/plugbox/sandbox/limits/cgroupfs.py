"""Reading and writing cgroupfs files: one ``write(2)`` per value, plain reads, no text layer.

cgroupfs parses each write on its own, and a buffered writer could split or merge values; reads
go through ``os.open``/``os.read`` because a run reads several of these files on the trigger ->
outcome path and the text-file machinery costs more than the reads.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write(path: str | Path, value: str) -> None:
    # One write(2) per value: cgroupfs parses each write on its own, and a buffered writer could
    # split or merge them.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_text(path: str | Path) -> str:
    # os.open/os.read rather than Path.read_text: a run reads half a dozen of these files on
    # the trigger -> outcome path, and the text-file machinery costs more than the reads.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return ""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except (FileNotFoundError, ProcessLookupError):
        return ""
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read_words(path: str | Path) -> list[str]:
    return read_text(path).split()


def read_int(path: str | Path) -> int | None:
    text = read_text(path).strip()
    return int(text) if text.isdigit() else None


def read_keyed(path: str | Path) -> dict[str, int]:
    values = {}
    for line in read_text(path).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def read_pids(path: str | Path) -> list[int]:
    return [int(word) for word in read_words(path)]
