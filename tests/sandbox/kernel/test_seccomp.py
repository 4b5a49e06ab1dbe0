"""seccomp: a filter compiled here (the "zygote") is loaded in a forked child, which then attacks.

Each denied call is made with arguments that are harmless when nothing filters it (a bad pointer,
fd or flag), and a control child makes the same calls unfiltered: as root none of them answers
``EPERM`` there, so the ``EPERM`` seen under the filter is the filter's doing.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import signal
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from plugbox.sandbox import kernel
from plugbox.sandbox.kernel import (
    Filter,
    Ruleset,
    SeccompPolicy,
    abi_version,
    default_policy,
    network_namespace_available,
    seccomp_available,
    unshare_network,
)
from plugbox.sandbox.kernel.seccomp import DENIED_SYSCALLS, syscall_number

from .conftest import LIBC, errno_of, in_child, raw_errno, syscall_errno

pytestmark = pytest.mark.skipif(
    not seccomp_available(), reason=f"seccomp unavailable: {kernel.seccomp.unavailable_reason()}"
)

ROOT = os.geteuid() == 0
BAD = 1  # an address that is never mapped: EFAULT wherever the kernel reads it
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = (
    0x00020000, 0x10000000, 0x20000000, 0x40000000,
)  # fmt: skip

#: Arguments that make each denied call a no-op or an error other than EPERM when not filtered.
HARMLESS_ARGS: dict[str, tuple[int, ...]] = {
    "ptrace": (0, 0, 0, 0),  # PTRACE_TRACEME, in a throwaway child
    "process_vm_readv": (0, 0, 0, 0, 0, 0),  # pid 0: ESRCH
    "process_vm_writev": (0, 0, 0, 0, 0, 0),
    "process_madvise": (-1, 0, 0, 0, 0),
    "pidfd_getfd": (-1, 0, 0),
    "io_uring_setup": (0, 0),
    "io_uring_enter": (-1, 0, 0, 0, 0, 0),
    "io_uring_register": (-1, 0, 0, 0),
    "unshare": (-1,),  # every flag bit: EINVAL
    "setns": (-1, 0),
    "mount": (BAD, BAD, BAD, 0, 0),
    "umount2": (BAD, 0),
    "pivot_root": (BAD, BAD),
    "chroot": (BAD,),
    "open_tree": (-1, BAD, 0),
    "move_mount": (-1, BAD, -1, BAD, 0),
    "fsopen": (BAD, 0),
    "fsconfig": (-1, 0, 0, 0, 0),
    "fsmount": (-1, 0, 0),
    "fspick": (-1, BAD, 0),
    "mount_setattr": (-1, BAD, 0, 0, 0),
    "bpf": (-1, 0, 0),
    "perf_event_open": (BAD, 0, -1, -1, 0),
    "userfaultfd": (-1,),
    "keyctl": (-1, 0, 0, 0, 0),
    "add_key": (BAD, BAD, 0, 0, 0),
    "request_key": (BAD, BAD, 0, 0),
    "fanotify_init": (-1, 0),
    "kexec_load": (0, 0, 0, -1),
    "kexec_file_load": (-1, -1, 0, BAD, -1),
    "init_module": (BAD, 0, BAD),
    "finit_module": (-1, BAD, 0),
    "delete_module": (BAD, 0),
    "swapon": (BAD, 0),
    "swapoff": (BAD,),
    "reboot": (0, 0, 0, 0),  # wrong magic numbers: EINVAL
    "acct": (BAD,),
    "quotactl": (0, BAD, 0, 0),
    "quotactl_fd": (-1, 0, 0, 0),
    "sethostname": (BAD, 5),
    "setdomainname": (BAD, 5),
    "settimeofday": (0, 0),  # sets nothing
    "clock_settime": (99, BAD),
    "clock_adjtime": (99, BAD),
    "adjtimex": (BAD,),
    "iopl": (99,),
    "ioperm": (0, 0, 0),
    "syslog": (10, 0, 0),  # SYSLOG_ACTION_SIZE_BUFFER: read-only
    "vhangup": (),  # the child has no controlling terminal (in_child calls setsid)
    "lookup_dcookie": (0, BAD, 0),
    "uselib": (BAD,),
    "open_by_handle_at": (-1, BAD, 0),
    # other processes
    "pidfd_open": (-1, 0),  # EINVAL
    "process_mrelease": (-1, 0),  # EBADF
    "kcmp": (0, 0, 99, 0, 0),  # pid 0: ESRCH
    "open_tree_attr": (-1, BAD, 0, 0, 0),
    # file metadata: a bad path, fd or pointer
    "chmod": (BAD, 0),
    "fchmod": (-1, 0),
    "fchmodat": (-1, BAD, 0),
    "fchmodat2": (-1, BAD, 0, 0),
    "chown": (BAD, -1, -1),
    "fchown": (-1, -1, -1),
    "lchown": (BAD, -1, -1),
    "fchownat": (-1, BAD, -1, -1, 0),
    "utime": (BAD, 0),
    "utimes": (BAD, 0),
    "futimesat": (-1, BAD, 0),
    "utimensat": (-1, BAD, 0, 0),
    "setxattr": (BAD, BAD, 0, 0, 0),
    "lsetxattr": (BAD, BAD, 0, 0, 0),
    "fsetxattr": (-1, BAD, 0, 0, 0),
    "setxattrat": (-1, BAD, 0, BAD, BAD, 16),
    "removexattr": (BAD, BAD),
    "lremovexattr": (BAD, BAD),
    "fremovexattr": (-1, BAD),
    "removexattrat": (-1, BAD, 0, BAD),
    "file_setattr": (-1, BAD, BAD, 0, 0),
    # SysV IPC (a key nobody uses: ENOENT; id -1: EINVAL) and POSIX message queues
    "msgget": (0x5EED1E55, 0),
    "msgsnd": (-1, BAD, 0, 0),
    "msgrcv": (-1, BAD, 0, 0, 0),
    "msgctl": (-1, 0, BAD),
    "semget": (0x5EED1E55, 0, 0),
    "semop": (-1, BAD, 1),
    "semtimedop": (-1, BAD, 1, 0),
    "semctl": (-1, 0, 0, 0),
    "shmget": (0x5EED1E55, 0, 0),
    "shmat": (-1, 0, 0),
    "shmdt": (BAD,),
    "shmctl": (-1, 0, BAD),
    "mq_open": (BAD, 0, 0, 0),
    "mq_unlink": (BAD,),
    "mq_timedsend": (-1, BAD, 0, 0, 0),
    "mq_timedreceive": (-1, BAD, 0, 0, 0),
    "mq_notify": (-1, 0),
    "mq_getsetattr": (-1, 0, 0),
    # unix sockets and fd exec
    "connect": (-1, BAD, 0),
    "bind": (-1, BAD, 0),
    "listen": (-1, 0),
    "execveat": (-1, BAD, 0, 0, 0),
    "memfd_create": (BAD, 0),  # EFAULT unfiltered
}


@pytest.fixture(scope="module")
def no_exec() -> Filter:
    return Filter.build(SeccompPolicy(allow_exec=False))


@pytest.fixture(scope="module")
def with_exec() -> Filter:
    return Filter.build(SeccompPolicy(allow_exec=True))


def number(name: str) -> int:
    found = syscall_number(name)
    if found is None:
        pytest.skip(f"{name} does not exist on {platform.machine()}")
    return found


# -- the filter itself ------------------------------------------------------------------------------
def test_every_denied_call_has_a_harmless_probe() -> None:
    assert set(HARMLESS_ARGS) == set(DENIED_SYSCALLS)


def test_build_is_deterministic_and_exec_adds_rules(no_exec: Filter, with_exec: Filter) -> None:
    assert no_exec.instructions > with_exec.instructions > 0
    assert Filter.build(SeccompPolicy(allow_exec=False)).instructions == no_exec.instructions
    assert no_exec.unresolved == ()  # every denied name exists on this architecture


def test_every_denied_syscall_answers_eperm(no_exec: Filter) -> None:
    calls = {name: (number(name), HARMLESS_ARGS[name]) for name in DENIED_SYSCALLS}

    def attempt(load: bool) -> dict[str, int]:
        if load:
            no_exec.load()
        return {name: syscall_errno(nr, *args) for name, (nr, args) in calls.items()}

    filtered = in_child(lambda: attempt(True)).unwrap()
    assert filtered == dict.fromkeys(calls, errno.EPERM)
    if ROOT:  # control: unfiltered, no call says EPERM, so the filter is what answered above
        unfiltered = in_child(lambda: attempt(False)).unwrap()
        assert errno.EPERM not in unfiltered.values(), unfiltered


def test_ptrace_traceme_is_denied(no_exec: Filter) -> None:
    LIBC.ptrace.restype = ctypes.c_long

    def child() -> int:
        no_exec.load()
        return raw_errno(LIBC.ptrace(0, 0, None, None))

    assert in_child(child).unwrap() == errno.EPERM


# -- sockets ---------------------------------------------------------------------------------------
# Numbers, not socket.AF_*: not every Python build names every family, and the filter answers
# before the kernel looks at whether the family exists.
FAMILIES = {
    "AF_INET": 2, "AF_INET6": 10, "AF_PACKET": 17, "AF_NETLINK": 16, "AF_VSOCK": 40,
    "AF_ALG": 38, "AF_BLUETOOTH": 31, "AF_CAN": 29, "AF_TIPC": 30, "AF_XDP": 44,
}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES.keys())
def test_every_socket_family_but_unix_is_denied(no_exec: Filter, family: int) -> None:
    def child() -> int:
        no_exec.load()
        return errno_of(lambda: socket.socket(family, socket.SOCK_STREAM).close())

    assert in_child(child).unwrap() == errno.EPERM


def test_unix_stream_sockets_and_socketpairs_still_work(no_exec: Filter) -> None:
    def child() -> tuple[bytes, int, int]:
        no_exec.load()
        left, right = socket.socketpair()
        with left, right:
            left.sendall(b"broker")
            received = right.recv(16)
        stream = errno_of(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
        inet_pair = errno_of(lambda: socket.socketpair(socket.AF_INET))
        return received, stream, inet_pair

    assert in_child(child).unwrap() == (b"broker", 0, errno.EPERM)


def test_a_socket_family_with_junk_in_the_upper_bits_is_denied(no_exec: Filter) -> None:
    # The kernel reads the family as an int, so 0x1_00000002 *is* AF_INET to it; a deny rule
    # comparing all 64 bits with AF_INET would let it through. The control shows the call works.
    sys_socket = number("socket")
    sneaky = (1 << 32) | socket.AF_INET

    def attempt(load: bool) -> int:
        if load:
            no_exec.load()
        fd = int(LIBC.syscall(ctypes.c_long(sys_socket), ctypes.c_long(sneaky), 1, 0))
        if fd >= 0:
            family = socket.socket(fileno=fd).family
            return -int(family)
        return ctypes.get_errno()

    assert in_child(lambda: attempt(False)).unwrap() == -socket.AF_INET
    assert in_child(lambda: attempt(True)).unwrap() == errno.EPERM


# -- namespaces and clone ------------------------------------------------------------------------------
def test_unshare_and_setns_are_denied(no_exec: Filter) -> None:
    LIBC.unshare.restype = ctypes.c_int
    LIBC.setns.restype = ctypes.c_int

    def child() -> tuple[int, int, int]:
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)  # unfiltered, setns to it is a no-op
        no_exec.load()
        return (
            raw_errno(LIBC.unshare(_CLONE_NEWNET)),
            raw_errno(LIBC.unshare(_CLONE_NEWUSER)),
            raw_errno(LIBC.setns(fd, 0)),
        )

    assert in_child(child).unwrap() == (errno.EPERM, errno.EPERM, errno.EPERM)


@pytest.mark.parametrize(
    "flag", [_CLONE_NEWUSER, _CLONE_NEWNET, _CLONE_NEWNS, _CLONE_NEWPID], ids=hex
)
def test_clone_with_a_namespace_flag_is_denied(no_exec: Filter, flag: int) -> None:
    sys_clone = number("clone")

    def child() -> int:
        no_exec.load()
        # Raw clone without CLONE_VM behaves like fork; if it ever succeeded, the copy leaves here.
        pid = int(
            LIBC.syscall(ctypes.c_long(sys_clone), ctypes.c_long(flag | signal.SIGCHLD), 0, 0, 0, 0)
        )
        if pid == 0:
            os._exit(0)
        if pid > 0:
            os.waitpid(pid, 0)
            return 0
        return ctypes.get_errno()

    assert in_child(child).unwrap() == errno.EPERM


def test_clone3_says_enosys_so_glibc_falls_back_to_clone(no_exec: Filter) -> None:
    sys_clone3 = number("clone3")

    def child() -> int:
        no_exec.load()
        return syscall_errno(sys_clone3, 0, 0)

    assert in_child(child).unwrap() == errno.ENOSYS


def test_fork_and_threads_still_work(no_exec: Filter) -> None:
    def child() -> tuple[int, list[int]]:
        no_exec.load()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        results: list[int] = []
        worker = threading.Thread(target=results.append, args=(1,))
        worker.start()
        worker.join()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results += pool.map(lambda n: n * n, range(2, 6))
        return os.waitstatus_to_exitcode(status), results

    assert in_child(child).unwrap() == (7, [1, 4, 9, 16, 25])


def test_grandchildren_inherit_the_filter(no_exec: Filter) -> None:
    def child() -> int:
        no_exec.load()
        return int(in_child(lambda: errno_of(lambda: socket.socket().close())).unwrap())

    assert in_child(child).unwrap() == errno.EPERM


# -- exec --------------------------------------------------------------------------------------------
def test_exec_is_denied_without_the_shell_capability(no_exec: Filter) -> None:
    def child() -> dict[str, object]:
        no_exec.load()
        return {
            "execv": errno_of(lambda: os.execv("/bin/true", ["true"])),
            "subprocess": errno_of(lambda: subprocess.run(["true"], check=False)),
            "posix_spawn": errno_of(lambda: os.posix_spawn("/bin/true", ["true"], {})),
            "os.system": os.system("true"),  # fork works, the exec of /bin/sh fails: 127
        }

    assert in_child(child).unwrap() == {
        "execv": errno.EPERM,
        "subprocess": errno.EPERM,
        "posix_spawn": errno.EPERM,
        "os.system": 127 << 8,
    }


def test_exec_works_with_the_shell_capability(with_exec: Filter) -> None:
    def child() -> None:
        with_exec.load()
        os.execv("/bin/sh", ["sh", "-c", "exit 42"])

    assert in_child(child).exit_code == 42

    def via_subprocess() -> int:
        with_exec.load()
        return subprocess.run(["true"], check=False).returncode

    assert in_child(via_subprocess).unwrap() == 0


# -- other ABIs: the filter checks native numbers, so anything else kills the process ---------------
def test_an_x32_syscall_kills_the_process(no_exec: Filter) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("x32 exists only on x86_64")
    x32_getpid = 0x40000000 | 39

    def attempt(load: bool) -> int:
        if load:
            no_exec.load()
        return int(LIBC.syscall(ctypes.c_long(x32_getpid)))

    assert in_child(lambda: attempt(False)).signal is None  # unfiltered: a pid or ENOSYS
    assert in_child(lambda: attempt(True)).signal == signal.SIGSYS


def test_an_i386_int80_syscall_kills_the_process(no_exec: Filter) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("int 0x80 is x86 only")
    # mov eax, 20 (i386 getpid); int 0x80; ret
    code = bytes.fromhex("b814000000cd80c3")

    def attempt(load: bool) -> int:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        int80 = ctypes.CFUNCTYPE(ctypes.c_int)(address)
        if load:
            no_exec.load()
        return int(int80())

    control = in_child(lambda: attempt(False))
    if control.signal is not None or not isinstance(control.value, int) or control.value <= 0:
        pytest.skip(f"no IA32 emulation in this kernel (control: {control})")
    assert in_child(lambda: attempt(True)).signal == signal.SIGSYS


# -- decided, not denied ---------------------------------------------------------------------------
def test_personality_query_still_works(no_exec: Filter) -> None:
    LIBC.personality.restype = ctypes.c_int

    def child() -> int:
        no_exec.load()
        return raw_errno(LIBC.personality(ctypes.c_ulong(0xFFFFFFFF)))

    assert in_child(child).unwrap() == 0


def test_a_process_cannot_make_itself_non_dumpable(no_exec: Filter) -> None:
    # Non-dumpable, a process's /proc/<pid>/fd is closed to the parent's memory counter (on a
    # host without a memory cgroup it would hide the memfd/tmpfs memory it holds).
    pr_get_dumpable, pr_set_dumpable = 3, 4

    def child(load: bool) -> tuple[int, int, int]:
        if load:
            no_exec.load()
        denied = raw_errno(LIBC.prctl(pr_set_dumpable, 0, 0, 0, 0))
        name = ctypes.create_string_buffer(b"probe")
        renamed = raw_errno(LIBC.prctl(15, name, 0, 0, 0))  # PR_SET_NAME
        return denied, LIBC.prctl(pr_get_dumpable, 0, 0, 0, 0), renamed

    assert in_child(lambda: child(False)).unwrap() == (0, 0, 0)  # unfiltered: it works
    # Filtered: EPERM, the process stays dumpable, and other prctl options (PR_SET_NAME) work.
    assert in_child(lambda: child(True)).unwrap() == (errno.EPERM, 1, 0)


# -- all three layers, in the runner's order ------------------------------------------------------
@pytest.mark.skipif(
    abi_version() == 0 or not network_namespace_available(), reason="needs every kernel layer"
)
def test_all_layers_in_the_runners_order(no_exec: Filter, tmp_path: object) -> None:
    with Ruleset.build(default_policy()) as ruleset:

        def child() -> dict[str, int]:
            unshare_network()
            ruleset.restrict_self()
            no_exec.load()
            import json  # imports still work (already-imported ones and stdlib reads)

            return {
                "environ": errno_of(lambda: open("/proc/1/environ", "rb").close()),
                "tcp": errno_of(lambda: socket.create_connection(("127.0.0.1", 22), timeout=1)),
                "exec": errno_of(lambda: subprocess.run(["true"], check=False)),
                "json": len(json.dumps({"ok": True})),
            }

        assert in_child(child).unwrap() == {
            "environ": errno.EACCES,
            "tcp": errno.EPERM,
            "exec": errno.EPERM,
            "json": 12,
        }
