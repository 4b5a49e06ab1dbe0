"""What the seccomp family tests share: the filters, raw syscall numbers, filtered/unfiltered runs."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbox.sandbox import kernel
from plugbox.sandbox.kernel import Filter, SeccompPolicy, seccomp_available

from .conftest import in_child

SKIP = pytest.mark.skipif(
    not seccomp_available() or os.uname().machine != "x86_64",
    reason=f"needs seccomp ({kernel.seccomp.unavailable_reason() or 'ok'}) and x86_64 numbers",
)
ROOT = os.geteuid() == 0
AT_FDCWD = -100
NR = {  # x86_64 numbers of calls Python has no wrapper for (the unified ones, 424+, are universal)
    "chmod": 90, "chown": 92, "lchown": 94, "utime": 132, "utimes": 235, "futimesat": 261,
    "fchmodat": 268, "fchmodat2": 452, "fchownat": 260, "creat": 85, "mknod": 133,
    "openat": 257, "setxattrat": 463, "removexattrat": 466, "file_setattr": 469,
    "prlimit64": 302, "setpriority": 141, "ioprio_set": 251, "sched_setscheduler": 144,
    "sched_setparam": 142, "sched_setaffinity": 203, "sched_setattr": 314,
    "migrate_pages": 256, "move_pages": 279, "get_robust_list": 274, "kcmp": 312,
    "pidfd_open": 434, "process_mrelease": 448, "ioctl": 16, "execveat": 322, "openat2": 437,
    "msgget": 68, "msgrcv": 70, "shmget": 29, "shmat": 30, "socket": 41, "socketpair": 53,
    "mq_open": 240, "mq_unlink": 241,
}  # fmt: skip

_keep: list[object] = []  # buffers passed by address must outlive the calls that use them


def c_path(path: Path | str) -> int:
    """Address of a NUL-terminated copy of ``path`` (kept alive for the whole test session)."""
    buffer = ctypes.create_string_buffer(os.fsencode(path))
    _keep.append(buffer)
    return ctypes.addressof(buffer)


def keep(*objects: object) -> None:
    _keep.extend(objects)


def build(allow_exec: bool = False) -> Filter:
    return Filter.build(SeccompPolicy(allow_exec=allow_exec))


def both(program: Filter, attacks: Callable[[], dict[str, int]]) -> tuple[dict, dict]:
    """(unfiltered, filtered) errnos of ``attacks``, each in a fresh child."""

    def filtered() -> dict[str, int]:
        program.load()
        return attacks()

    return in_child(attacks).unwrap(), in_child(filtered).unwrap()


def assert_filter_answers(unfiltered: dict[str, int], filtered: dict[str, int]) -> None:
    """Every filtered call said EPERM, and no unfiltered one did: the EPERM is the filter's."""
    assert filtered == dict.fromkeys(filtered, errno.EPERM), filtered
    assert errno.EPERM not in unfiltered.values(), unfiltered
