"""seccomp, reaching what is not the run's own (issue 9, classes D, E, I): other processes'
limits and scheduling, SysV IPC and POSIX message queues, unix sockets, exec of a descriptor.

Targets are processes and IPC objects this test creates, with the test's uid — the situation of
an unprivileged host, whose jobs share its uid. A control child makes every call unfiltered and
it works (or fails with anything but EPERM), so the EPERM under the filter is the filter's; then
the test checks the target did not change.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import resource
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugbox.sandbox.kernel import Filter

from ._seccomp_helpers import (
    AT_FDCWD,
    NR,
    ROOT,
    SKIP,
    assert_filter_answers,
    both,
    build,
    c_path,
    keep,
)
from .conftest import LIBC, errno_of, in_child, syscall_errno

pytestmark = SKIP

PRIO_PROCESS, PRIO_USER = 0, 2
IOPRIO_WHO_PROCESS, IOPRIO_WHO_USER = 1, 3
IOPRIO_BE_4 = 2 << 13 | 4
BAD_CLASS = 7 << 13  # no such I/O class: EINVAL, checked before the processes
SCHED_BATCH = 3
KCMP_VM = 1
OTHER_UID = 4444


@pytest.fixture(scope="module")
def no_exec() -> Filter:
    return build()


@pytest.fixture(scope="module")
def with_exec() -> Filter:
    return build(allow_exec=True)


# -- other processes --------------------------------------------------------------------------
@pytest.fixture
def targets() -> Iterator[tuple[int, int]]:
    """Two processes of the test's uid: one for the control child, one for the filtered one."""
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        yield procs[0].pid, procs[1].pid
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _process_attacks(target: int) -> Callable[[], dict[str, int]]:
    nofile = (ctypes.c_uint64 * 2)(64, 64)
    cpu_mask = ctypes.c_ulong(1 << min(os.sched_getaffinity(0)))
    param = ctypes.c_int(0)
    # struct sched_attr (size 56): the policy and nice the calls before it set, so an
    # unprivileged control is not refused for raising a priority
    sched_attr = (ctypes.c_uint32 * 14)(56, SCHED_BATCH, 0, 0, 10)
    head, length = ctypes.c_void_p(), ctypes.c_size_t()
    keep(nofile, cpu_mask, param, sched_attr, head, length)

    def attacks() -> dict[str, int]:
        pidfd = -1
        return {
            "prlimit64": syscall_errno(NR["prlimit64"], target, resource.RLIMIT_NOFILE,
                                       ctypes.addressof(nofile), 0),
            "setpriority": errno_of(lambda: os.setpriority(PRIO_PROCESS, target, 10)),
            "ioprio_set": syscall_errno(NR["ioprio_set"], IOPRIO_WHO_PROCESS, target, IOPRIO_BE_4),
            "sched_setaffinity": syscall_errno(NR["sched_setaffinity"], target, 8,
                                               ctypes.addressof(cpu_mask)),
            "sched_setscheduler": syscall_errno(NR["sched_setscheduler"], target, SCHED_BATCH,
                                                ctypes.addressof(param)),
            "sched_setparam": syscall_errno(NR["sched_setparam"], target, ctypes.addressof(param)),
            "sched_setattr": syscall_errno(NR["sched_setattr"], target,
                                           ctypes.addressof(sched_attr), 0),
            "migrate_pages": syscall_errno(NR["migrate_pages"], target, 0, 0, 0),
            "move_pages": syscall_errno(NR["move_pages"], target, 0, 0, 0, 0, 0),
            "get_robust_list": syscall_errno(NR["get_robust_list"], target,
                                             ctypes.addressof(head), ctypes.addressof(length)),
            "kcmp": syscall_errno(NR["kcmp"], os.getpid(), target, KCMP_VM, 0, 0),
            "pidfd_open": errno_of(lambda: os.close(os.pidfd_open(target))),
            "process_mrelease": syscall_errno(NR["process_mrelease"], pidfd, 0),
        }  # fmt: skip

    return attacks


def test_calls_on_another_process_are_denied(no_exec: Filter, targets: tuple[int, int]) -> None:
    control_target, target = targets
    unfiltered = in_child(_process_attacks(control_target)).unwrap()
    before = _observe(target)

    def filtered() -> dict[str, int]:
        no_exec.load()
        return _process_attacks(target)()

    denied = in_child(filtered).unwrap()
    assert_filter_answers(unfiltered, denied)
    assert unfiltered["prlimit64"] == unfiltered["setpriority"] == 0  # the control changed ...
    assert _observe(control_target) != before  # ... its target,
    assert _observe(target) == before  # and the filtered child changed nothing


def _observe(pid: int) -> tuple[object, ...]:
    return (
        resource.prlimit(pid, resource.RLIMIT_NOFILE),
        os.getpriority(PRIO_PROCESS, pid),
        os.sched_getaffinity(pid),
        os.sched_getscheduler(pid),
    )


def test_the_same_calls_on_itself_still_work(no_exec: Filter) -> None:
    """pid 0 is the caller: a job may lower its own limits, nice itself, pin itself."""

    def child() -> dict[str, int]:
        no_exec.load()
        cpus = os.sched_getaffinity(0)
        return {
            "setrlimit": errno_of(lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0))),
            "nice": errno_of(lambda: os.nice(1)),
            "setpriority": errno_of(lambda: os.setpriority(PRIO_PROCESS, 0, 5)),
            "ioprio_set": syscall_errno(NR["ioprio_set"], IOPRIO_WHO_PROCESS, 0, IOPRIO_BE_4),
            "sched_setaffinity": errno_of(lambda: os.sched_setaffinity(0, cpus)),
            "sched_setscheduler": errno_of(
                lambda: os.sched_setscheduler(0, SCHED_BATCH, os.sched_param(0))
            ),
            "getpriority_of_parent": errno_of(lambda: os.getpriority(PRIO_PROCESS, os.getppid())),
        }

    assert in_child(child).unwrap() == dict.fromkeys(
        (
            "setrlimit", "nice", "setpriority", "ioprio_set", "sched_setaffinity",
            "sched_setscheduler", "getpriority_of_parent",
        ),
        0,
    )  # fmt: skip


@pytest.mark.skipif(not ROOT, reason="needs a uid of its own, so the control renices nobody else")
def test_every_process_of_the_uid_is_denied_too(no_exec: Filter) -> None:
    """PRIO_USER / IOPRIO_WHO_USER with who 0 mean "every process of my uid" — the host's on an
    unprivileged host. The child first becomes a uid nothing else runs as, so the control is
    harmless; junk in the upper half of ``which`` is what the kernel ignores and the masked
    rule still catches. ioprio_set is given an invalid class: Linux 6.18 itself
    answered EPERM to IOPRIO_WHO_USER here, even for a uid with no other process, so only the
    control's EINVAL (the class is checked first) is what shows the filter answered."""

    def attacks(load: bool) -> dict[str, int]:
        os.setgid(OTHER_UID)
        os.setuid(OTHER_UID)
        if load:
            no_exec.load()
        return {
            "setpriority_user": syscall_errno(NR["setpriority"], PRIO_USER, 0, 1),
            "setpriority_user_junk": syscall_errno(NR["setpriority"], PRIO_USER | 1 << 32, 0, 1),
            "ioprio_set_user": syscall_errno(NR["ioprio_set"], IOPRIO_WHO_USER, 0, BAD_CLASS),
            "ioprio_set_user_junk": syscall_errno(
                NR["ioprio_set"], IOPRIO_WHO_USER | 1 << 32, 0, BAD_CLASS
            ),
        }

    unfiltered = in_child(lambda: attacks(False)).unwrap()
    filtered = in_child(lambda: attacks(True)).unwrap()
    assert unfiltered == {
        "setpriority_user": 0,
        "setpriority_user_junk": 0,
        "ioprio_set_user": errno.EINVAL,
        "ioprio_set_user_junk": errno.EINVAL,
    }
    assert filtered == dict.fromkeys(filtered, errno.EPERM)


# -- SysV IPC and POSIX message queues -----------------------------------------------------------
IPC_CREAT, IPC_NOWAIT, IPC_RMID, IPC_PRIVATE = 0o1000, 0o4000, 0, 0


class _Message(ctypes.Structure):
    _fields_ = (("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 16))


@pytest.fixture
def host_queue() -> Iterator[tuple[int, int]]:
    """A message queue of the test's uid, mode 0600, holding one message: (key, id)."""
    LIBC.msgget.restype = ctypes.c_int
    key = 0x5EED0000 | os.getpid() & 0xFFFF
    qid = LIBC.msgget(key, IPC_CREAT | 0o600)
    assert qid >= 0, os.strerror(ctypes.get_errno())
    message = _Message(1, b"host secret")
    assert LIBC.msgsnd(qid, ctypes.byref(message), 16, IPC_NOWAIT) == 0
    try:
        yield key, qid
    finally:
        LIBC.msgctl(qid, IPC_RMID, None)


def _ipc_attacks(key: int, qid: int, control: bool) -> Callable[[], dict[str, int]]:
    message = _Message()
    keep(message)

    def attacks() -> dict[str, int]:
        name = c_path(f"plugbox-{os.getpid()}")
        found = {
            "msgget": syscall_errno(NR["msgget"], key, 0),
            # what the control creates, it removes at once: a leftover is what the attack is
            "shmget": _created(NR["shmget"], (IPC_PRIVATE, 4096, IPC_CREAT | 0o600),
                               lambda shmid: LIBC.shmctl(shmid, IPC_RMID, None)),
            "shmat": syscall_errno(NR["shmat"], 0x7FFFFFFF, 0, 0),  # EINVAL: no such segment
            "mq_open": _created(NR["mq_open"], (name, os.O_CREAT | os.O_RDWR, 0o600, 0),
                                lambda fd: (os.close(fd), syscall_errno(NR["mq_unlink"], name))),
        }  # fmt: skip
        if not control:  # the control must leave the message for the check afterwards
            found["msgrcv"] = syscall_errno(
                NR["msgrcv"], qid, ctypes.addressof(message), 16, 0, IPC_NOWAIT
            )
        return found

    return attacks


def _created(number: int, args: tuple[int, ...], remove: Callable[[int], object]) -> int:
    """errno of a creating syscall; what it created is removed again (0 when it worked)."""
    result = int(LIBC.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args)))
    if result < 0:
        return ctypes.get_errno()
    remove(result)
    return 0


def test_sysv_ipc_and_message_queues_are_denied(
    host_queue: tuple[int, int], no_exec: Filter
) -> None:
    key, qid = host_queue
    unfiltered = in_child(_ipc_attacks(key, qid, control=True)).unwrap()

    def filtered() -> dict[str, int]:
        no_exec.load()
        return _ipc_attacks(key, qid, control=False)()

    denied = in_child(filtered).unwrap()
    assert_filter_answers(unfiltered, denied)
    assert unfiltered["msgget"] == unfiltered["shmget"] == unfiltered["mq_open"] == 0
    message = _Message()  # the host's message is still there, unread
    assert LIBC.msgrcv(qid, ctypes.byref(message), 16, 0, IPC_NOWAIT) == 16
    assert message.mtext == b"host secret"


# -- unix sockets -------------------------------------------------------------------------------
@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Path]:
    tmp_path.chmod(0o755)
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    try:
        yield path
    finally:
        server.close()


def _socket_attacks(path: Path, dgram_target: Path) -> Callable[[], dict[str, int]]:
    def connect(address: str | bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(address)

    def bind(address: str | bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(address)

    def sendto() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"from the job", str(dgram_target))

    def attacks() -> dict[str, int]:
        pid = os.getpid()
        return {
            "connect_path": errno_of(lambda: connect(str(path))),
            "connect_seqpacket": errno_of(lambda: _seqpacket_connect(str(path))),
            "bind_abstract": errno_of(lambda: bind(f"\0plugbox-{pid}".encode())),
            "bind_path": errno_of(lambda: bind(str(path.with_name(f"job-{pid}.sock")))),
            "listen": errno_of(lambda: socket.socket(socket.AF_UNIX).listen()),
            "dgram_sendto": errno_of(sendto),
            "dgram": errno_of(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()),
            "raw": errno_of(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_RAW).close()),
            "dgram_flags": errno_of(lambda: socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            ).close()),
            "dgram_junk": syscall_errno(NR["socket"], socket.AF_UNIX, 2 | 1 << 40, 0),
            "dgram_pair": errno_of(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)),
        }  # fmt: skip

    return attacks


def _seqpacket_connect(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(path)  # a stream listener: EPROTOTYPE unfiltered, but it got as far


def test_unix_sockets_reach_nothing(no_exec: Filter, listening: Path) -> None:
    """Landlock (ABI 7) has no hook on a pathname connect, abstract scoping does not cover bind,
    and an unconnected datagram socket reaches any path with sendto."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram_target = listening.with_name("dgram.sock")
    receiver.bind(str(dgram_target))
    receiver.setblocking(False)
    with receiver:
        unfiltered, filtered = both(no_exec, _socket_attacks(listening, dgram_target))
        assert receiver.recv(64) == b"from the job"  # the control's datagram arrived
        with pytest.raises(BlockingIOError):
            receiver.recv(64)  # and nothing from the filtered child
    assert_filter_answers(unfiltered, filtered)
    assert unfiltered["connect_seqpacket"] in (0, errno.EPROTOTYPE)


def test_the_run_channel_socketpairs_and_asyncio_still_work(no_exec: Filter) -> None:
    """The child's channel is a SOCK_STREAM socketpair inherited from the parent; asyncio's
    self-pipe is a socketpair too (call_soon_threadsafe writes to it from another thread)."""
    inherited, parent_end = socket.socketpair()

    def child() -> tuple[bytes, bytes, int]:
        parent_end.close()
        no_exec.load()
        inherited.sendall(b"result frame")
        left, right = socket.socketpair()
        with left, right:
            left.sendall(b"pair")
            pair = right.recv(16)

        async def main() -> int:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[int] = loop.create_future()
            threading.Thread(target=loop.call_soon_threadsafe, args=(done.set_result, 7)).start()
            return await asyncio.wait_for(done, 5)

        seqpacket = errno_of(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).close())
        return pair, b"%d" % asyncio.run(main()), seqpacket

    with parent_end:
        assert in_child(child).unwrap() == (b"pair", b"7", 0)
        assert parent_end.recv(64) == b"result frame"
    inherited.close()


# -- exec of a descriptor -------------------------------------------------------------------------
AT_EMPTY_PATH = 0x1000


def _memfd_exec(load: Filter | None, via: str) -> Callable[[], int]:
    program = Path("/bin/true").read_bytes()

    def child() -> int:
        fd = os.memfd_create("copy-of-true", 0)
        os.write(fd, program)
        if load is not None:
            load.load()
        if via == "execveat":
            argv = (ctypes.c_char_p * 2)(b"true", None)
            envp = (ctypes.c_char_p * 1)(None)
            return syscall_errno(NR["execveat"], fd, c_path(""), ctypes.addressof(argv),
                                 ctypes.addressof(envp), AT_EMPTY_PATH)  # fmt: skip
        if via == "fexecve":
            return errno_of(lambda: os.execve(fd, ["true"], {}))
        return syscall_errno(NR["execveat"], AT_FDCWD, c_path("/bin/true"), 0, 0, 0)

    return child


@pytest.mark.parametrize("via", ["execveat", "fexecve", "execveat_path"])
def test_exec_of_a_descriptor_is_denied_even_with_the_shell_capability(
    with_exec: Filter, via: str
) -> None:
    """A memfd copy of a program runs whatever Landlock says about paths; execveat is never
    needed (subprocess, posix_spawn and the shells use execve)."""
    control = in_child(_memfd_exec(None, via))
    assert (control.exit_code, control.value) == (0, None)  # exec'd /bin/true: no report, exit 0
    assert in_child(_memfd_exec(with_exec, via)).unwrap() == errno.EPERM
