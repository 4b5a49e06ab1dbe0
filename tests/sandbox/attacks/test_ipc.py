"""Class D of issue 9: SysV IPC and POSIX message queues shared with the host.

Layer: seccomp — every SysV IPC call and every mq_* call answers EPERM, so a job neither reads a
host queue (mode 0600, the host user's) nor leaves a segment, semaphore set or queue behind.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugbox.sandbox.run_identity import RUN_ID

from .conftest import Host

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
IPC_CREAT, IPC_NOWAIT, IPC_RMID = 0o1000, 0o4000, 0
NR_MQ_UNLINK = 241


class _Message(ctypes.Structure):
    _fields_ = (("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 16))


def _as(host: Host, fn: Callable[[], Any]) -> Any:
    """``fn()`` in a child running as the host user (IPC objects belong to their creator)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if host.user is not None:
                os.setgid(host.user.pw_gid)
                os.setuid(host.uid)
            os.write(write_end, pickle.dumps(fn()))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def _make_queue() -> tuple[int, int]:
    key = 0x5EED0000 | os.getpid() & 0xFFFF
    qid = LIBC.msgget(key, IPC_CREAT | 0o600)
    assert qid >= 0, os.strerror(ctypes.get_errno())
    assert LIBC.msgsnd(qid, ctypes.byref(_Message(1, b"host secret")), 16, IPC_NOWAIT) == 0
    return key, qid


def _read_queue(qid: int) -> bytes:
    message = _Message()
    if LIBC.msgrcv(qid, ctypes.byref(message), 16, 0, IPC_NOWAIT) < 0:
        return b""
    return message.mtext


@pytest.fixture
def host_queue(host: Host) -> Iterator[tuple[int, int]]:
    key, qid = _as(host, _make_queue)
    folder = host.workspace / ".plugbox" / "eve"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ipc.json").write_text(json.dumps({"key": key, "id": qid}))
    if host.user is not None:
        for path in (folder, folder / "ipc.json"):
            os.chown(path, host.uid, host.user.pw_gid)
    try:
        yield key, qid
    finally:
        LIBC.msgctl(qid, IPC_RMID, None)


def _objects(host: Host) -> set[tuple[str, str]]:
    """The SysV objects of the machine's IPC namespace a job of ``host`` could have created —
    by creator uid: the host's, the run uid, root — as (kind, id). Other users' objects (the test
    suite's PostgreSQL, say) come and go on their own and prove nothing either way."""
    creators = {str(uid) for uid in (0, host.uid, RUN_ID)}
    found = set()
    for kind in ("shm", "sem", "msg"):
        header, *lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        cuid = header.split().index("cuid")
        found |= {(kind, line.split()[1]) for line in lines if line.split()[cuid] in creators}
    return found


def test_host_ipc_is_unreachable_and_nothing_is_left_behind(
    host: Host, host_queue: tuple[int, int]
) -> None:
    key, qid = host_queue
    before = _objects(host)
    attack = host.attack("ipc")
    assert attack.control == {"host_queue": {"key": key, "id": qid}, "pipe": "own pipe"}
    for name in ("msgget_host", "msgrcv_host", "msgctl_stat_host", "shmget_leave",
                 "shmat_by_id", "semget_leave", "mq_open_leave"):  # fmt: skip
        attack.stopped(name, errno.EPERM)
    assert _objects(host) == before  # no segment, semaphore set or queue left behind
    assert _as(host, lambda: _read_queue(qid)) == b"host secret"  # unread by the job
    name = ctypes.create_string_buffer(b"eve-left-behind")
    assert LIBC.syscall(NR_MQ_UNLINK, name) == -1 and ctypes.get_errno() == errno.ENOENT
