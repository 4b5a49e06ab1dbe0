"""Dropping Linux capabilities from a run child: what root (or a user namespace) could do, minus
what a job never needs.

A root host's run child starts with every capability of the initial user namespace. seccomp and
Landlock already refuse what most of them guard, but a capability that is gone needs no filter:
so after Landlock the child drops all of them except the file-access ones (:data:`FILE_ACCESS`),
which a job of a root host needs to work in a workspace that other users own. Each is removed from
the bounding set too, so no ``execve`` — of a setuid or file-capability binary, or as root — can
bring one back (``no_new_privs`` already stops the first two).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

from plugbox.sandbox._libc import LIBC

__all__ = ["CAP_SYS_RESOURCE", "FILE_ACCESS", "drop", "drop_all_but_file_access", "held"]

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_SETPCAP = 8
CAP_SYS_RESOURCE = 24

#: Kept: reading, writing and owning files as root does, inside what Landlock allows.
FILE_ACCESS = frozenset({CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID})

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _last_cap() -> int:
    try:
        with open(_LAST_CAP_FILE) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one Linux 6.x knows


#: Read once at import (in the zygote): a confined child may not read /proc.
LAST_CAP = _last_cap()


def drop(capabilities: Iterable[int]) -> None:
    """Remove ``capabilities`` from this process's sets and bounding set, and clear ambient.

    A process that does not hold one has nothing to drop; where capabilities cannot be changed
    (not Linux) nothing happens, which is what holding none amounts to anyway.
    """
    if LIBC is None:
        return
    caps = sorted(set(capabilities))
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if LIBC.capget(ctypes.byref(header), data) != 0:
        return
    # The bounding set first: dropping from it needs CAP_SETPCAP, which capset may take away.
    for cap in caps:
        LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    for cap in caps:
        word, bit = divmod(cap, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    LIBC.capset(ctypes.byref(header), data)
    LIBC.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def drop_all_but_file_access() -> None:
    """Keep :data:`FILE_ACCESS` only (the run child calls this after Landlock, before seccomp)."""
    drop(cap for cap in range(LAST_CAP + 1) if cap not in FILE_ACCESS)


def held() -> tuple[int, int]:
    """This process's effective and bounding capability masks (no /proc needed: a confined
    child cannot read it)."""
    if LIBC is None:
        return 0, 0
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if LIBC.capget(ctypes.byref(header), data) != 0:
        return 0, 0
    effective = data[0].effective | (data[1].effective << 32)
    bounding = 0
    for cap in range(LAST_CAP + 1):
        if LIBC.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
            bounding |= 1 << cap
    return effective, bounding
