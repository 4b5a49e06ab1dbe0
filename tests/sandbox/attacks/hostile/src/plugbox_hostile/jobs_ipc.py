"""SysV IPC and POSIX message queues (issue 9, class D): one namespace with the host.

The review read a host-side message queue (mode 0600) and left a shared-memory segment behind
after its run. The test creates a queue as the host user and writes its key and id to
``.plugbox/eve/ipc.json``; this job tries to read it and to leave objects behind.
"""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
_IPC_PRIVATE, _IPC_CREAT, _IPC_NOWAIT, _IPC_STAT = 0, 0o1000, 0o4000, 2
_NR = {"msgget": 68, "msgrcv": 70, "msgctl": 71, "shmget": 29, "shmat": 30, "semget": 64,
       "mq_open": 240}  # fmt: skip
QUEUE_NAME = b"eve-left-behind"  # the test checks no such POSIX queue exists afterwards


def _syscall(name: str, *args: Any) -> int:
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(_LIBC.syscall(ctypes.c_long(_NR[name]), *converted))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


@job("ipc", schedule="@daily", timeout="30s", permissions=perms.presets.plugin_workspace("eve"))
def ipc(ctx: JobContext) -> dict[str, Any]:
    with open(".plugbox/eve/ipc.json") as handle:
        host = json.load(handle)
    buffer = ctypes.create_string_buffer(256)
    read_end, write_end = os.pipe()  # the control: ordinary IPC between its own fds works
    os.write(write_end, b"own pipe")
    return report(
        {"host_queue": host, "pipe": os.read(read_end, 16).decode()},
        msgget_host=attempt(_syscall, "msgget", host["key"], 0),
        msgrcv_host=attempt(_syscall, "msgrcv", host["id"], buffer, 64, 0, _IPC_NOWAIT),
        msgctl_stat_host=attempt(_syscall, "msgctl", host["id"], _IPC_STAT, buffer),
        shmget_leave=attempt(_syscall, "shmget", _IPC_PRIVATE, 1 << 20, _IPC_CREAT | 0o600),
        shmat_by_id=attempt(_syscall, "shmat", host["id"], 0, 0),
        semget_leave=attempt(_syscall, "semget", _IPC_PRIVATE, 1, _IPC_CREAT | 0o600),
        mq_open_leave=attempt(
            _syscall, "mq_open", ctypes.c_char_p(QUEUE_NAME), os.O_CREAT | os.O_RDWR, 0o600, 0
        ),
    )


JOBS = [ipc]
