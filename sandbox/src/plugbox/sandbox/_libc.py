"""libc for the sandbox's direct system calls: loaded once, every function typed up front.

``dlopen(NULL)`` rather than ``ctypes.util.find_library``, which on Linux runs ``ldconfig`` or
``gcc`` in a subprocess: milliseconds, and impossible in a child that may no longer execute
programs. Every function the sandbox calls is resolved and typed here, at import — in the zygote —
because after confinement nothing may need to load a library or look up a symbol.
"""

from __future__ import annotations

import ctypes
import sys


def _load() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    libc.prctl.argtypes = (
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    )
    libc.unshare.restype = ctypes.c_int
    libc.unshare.argtypes = (ctypes.c_int,)
    libc.mount.restype = ctypes.c_int
    libc.mount.argtypes = (
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    )
    if hasattr(libc, "mallopt"):  # glibc only; resolved here so no run child looks it up
        libc.mallopt.restype = ctypes.c_int
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.umount2.restype = ctypes.c_int
    libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
    return libc


#: The C library, or None where there is none to call (not Linux).
LIBC = _load()


_PR_SET_NAME = 15


def set_process_name(name: str) -> None:
    """Name the calling process as ``ps``, ``top`` and ``perf`` show it (first 15 bytes).

    So an operator looking at the machine sees ``plugbox-zygote`` and ``plugbox-run`` rather than
    a row of identical ``python`` processes.
    """
    if LIBC is None:
        return
    buffer = ctypes.create_string_buffer(name.encode()[:15])
    LIBC.prctl(_PR_SET_NAME, ctypes.addressof(buffer), 0, 0, 0)
