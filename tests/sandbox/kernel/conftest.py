"""Fork a child, confine it with one kernel layer, attempt a bypass there, report back by pipe.

Every test in this directory applies a real layer to a real process; the parent (pytest) is never
confined. The child reports ``errno`` values (0 = the call succeeded), so a test asserts both that
an attack was stopped and how: ``EACCES`` from Landlock, ``EPERM`` from seccomp, ``ENETUNREACH``
from the empty network namespace.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long


@dataclass(frozen=True)
class Child:
    """What a forked child did: the value its function returned, or how it ended."""

    value: Any = None
    raised: tuple[str, int | None, str] | None = None
    exit_code: int | None = None
    signal: int | None = None

    def unwrap(self) -> Any:
        assert self.raised is None, f"the child raised {self.raised}"
        assert self.signal is None, f"the child was killed by {signal.Signals(self.signal).name}"
        return self.value


def in_child(fn: Callable[[], object], *, timeout: float = 30.0) -> Child:
    """Run ``fn`` in a forked child (in a new session) and return what happened there."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read_end)
            os.setsid()  # no controlling terminal: a stray vhangup() cannot touch pytest's
            payload = pickle.dumps(("ok", fn()))
        except BaseException as exc:
            payload = pickle.dumps(
                ("raised", type(exc).__name__, getattr(exc, "errno", None), str(exc))
            )
        finally:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_end, view) :]
            finally:
                os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"child {pid} did not finish within {timeout} s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if not chunks:
        return Child(exit_code=exit_code, signal=killed)
    report = pickle.loads(b"".join(chunks))
    if report[0] == "ok":
        return Child(value=report[1], exit_code=exit_code, signal=killed)
    return Child(raised=tuple(report[1:]), exit_code=exit_code, signal=killed)


def errno_of(call: Callable[[], object]) -> int:
    """0 when ``call`` succeeds, else the errno of the :class:`OSError` it raised."""
    try:
        call()
    except OSError as exc:
        return exc.errno if exc.errno is not None else -1
    return 0


def raw_errno(result: int) -> int:
    """The errno of a raw libc/syscall result through :data:`LIBC` (0 when it succeeded)."""
    return ctypes.get_errno() if result < 0 else 0


def syscall_errno(number: int, *args: int) -> int:
    """Make a raw syscall with integer arguments; 0 on success, else its errno."""
    return raw_errno(int(LIBC.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))))
