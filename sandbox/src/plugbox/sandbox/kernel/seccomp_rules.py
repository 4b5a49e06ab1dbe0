"""What the seccomp filter denies, as data: one place to read every rule and the reason for it.

:mod:`.seccomp` compiles these rules with libseccomp; this module only says what they are. Each
family is complete — every syscall that does the thing, including numbers newer than the
libseccomp 2.5.4 of Debian 12 knows (:data:`UNIFIED_NUMBERS`), because one forgotten variant
(``fchmodat2`` beside ``fchmodat``) is the whole hole.

Argument comparisons follow one rule: **the kernel reads most arguments as a 32-bit** ``int``
**and ignores the upper half of the register**. A deny rule ``== value`` on 64 bits is dodged by
``value | 1 << 32``, so equality is always a masked compare on the low 32 bits (or a flag bit),
and "not zero" compares all 64 bits, which denies junk-filled zeros as well — stricter, never
looser. libseccomp 2.5 allows one comparison per argument in a rule; rules for one syscall are
OR-ed, which is how "which is PRIO_USER *or* who is not 0" is written.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

__all__ = ["DENIED_SYSCALLS", "UNIFIED_NUMBERS", "ArgCmp", "Rule", "rules"]

# libseccomp's enum scmp_compare.
CMP_NE = 1
CMP_MASKED_EQ = 7

_LOW32 = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class ArgCmp:
    """``arg`` (0-based) compared with ``op``: NE against ``a``, or ``arg & a == b`` (MASKED_EQ)."""

    arg: int
    op: int
    a: int
    b: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """Answer ``errno`` to ``syscall`` when every comparison holds (none: always)."""

    syscall: str
    cmps: tuple[ArgCmp, ...] = ()
    errno: int = errno.EPERM


def _ne(arg: int, value: int) -> ArgCmp:
    return ArgCmp(arg, CMP_NE, value)


def _is(arg: int, value: int) -> ArgCmp:
    """The int argument equals ``value``, whatever the upper half of the register holds."""
    return ArgCmp(arg, CMP_MASKED_EQ, _LOW32, value)


def _has(arg: int, bits: int) -> ArgCmp:
    return ArgCmp(arg, CMP_MASKED_EQ, bits, bits)


#: Denied with EPERM whatever the arguments. Grouped by the door each one opens.
DENIED_SYSCALLS: tuple[str, ...] = (
    # other processes' memory, descriptors and identity; pidfd_open too: all a pidfd adds to a
    # pid is out-of-band access (pidfd_getfd, process_madvise, setns: denied), watching a foreign
    # process exit and process_mrelease; Python's asyncio falls back to waitpid when it fails.
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
    "pidfd_open", "process_mrelease", "kcmp",
    # io_uring: requests run in kernel workers that this filter never sees
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # namespaces and mounts (old and new mount API)
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "open_tree_attr",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # file metadata: Landlock has no hook on any of these, so allowed they reach every file the
    # uid owns (an unprivileged host's jobs share its uid) — outside the workspace too.
    "chmod", "fchmod", "fchmodat", "fchmodat2",
    "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat",
    "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
    "file_setattr",
    # SysV IPC and POSIX message queues: one namespace shared with the host and every other run
    "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semctl",
    "shmget", "shmat", "shmdt", "shmctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    # unix sockets (the only family a run can create): no pathname socket (/run/docker.sock,
    # another plugin's) or abstract name is reached or taken. Landlock (ABI <= 7) has no hook on
    # a pathname connect, and abstract scoping does not cover bind. The run's own channel is an
    # inherited, connected socketpair and needs none of them.
    "connect", "bind", "listen",
    # exec of a descriptor (a memfd copy of a program runs whatever Landlock says about paths)
    "execveat",
    # memfd: its file lives on an internal filesystem Landlock never checks, so a memfd copy of
    # a program is executable through /proc/self/fd; and without a memory cgroup, a memfd sent
    # through a socket to itself holds memory that no descriptor table (and no counter) shows.
    "memfd_create",
    # kernel attack surface a job has no use for
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "fanotify_init",
    # root-only calls that change or read the host as a whole
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon",
    "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "syslog",
    "vhangup", "lookup_dcookie", "uselib", "open_by_handle_at",
)  # fmt: skip

#: Numbers of calls added after the 424 unification (equal on every architecture), used when an
#: older libseccomp cannot resolve the name: skipping one silently would leave a hole.
UNIFIED_NUMBERS = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_open": 434, "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440,
    "mount_setattr": 442, "quotactl_fd": 443, "process_mrelease": 448, "fchmodat2": 452,
    "setxattrat": 463, "removexattrat": 466, "open_tree_attr": 467, "file_setattr": 469,
}  # fmt: skip

_AF_UNIX = 1
_SOCK_TYPE_MASK = 0xF
_SOCK_DGRAM = 2
_SOCK_RAW = 3  # an AF_UNIX SOCK_RAW socket is a datagram socket
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
_O_CREAT = 0o100
_O_TMPFILE = 0o20000000  # __O_TMPFILE, the bit without O_DIRECTORY; same on x86_64 and arm64
_SET_ID_BITS = (0o4000, 0o2000)  # S_ISUID, S_ISGID
_PRIO_USER = 2
_PR_SET_DUMPABLE = 4
_IOPRIO_WHO_USER = 3

#: ioctl commands that change an inode's attributes. Each needs only ownership, not a writable
#: descriptor, so a file Landlock lets the job *read* would do. Both encodings where the size
#: differs (``long`` vs ``int``). FS_IOC_FSSETXATTR is also XFS_IOC_FSSETXATTR.
FS_ATTRIBUTE_IOCTLS = {
    "FS_IOC_SETFLAGS": 0x40086602, "FS_IOC32_SETFLAGS": 0x40046602,
    "FS_IOC_SETVERSION": 0x40087602, "FS_IOC32_SETVERSION": 0x40047602,
    "EXT4_IOC_SETVERSION": 0x40086604, "EXT4_IOC32_SETVERSION": 0x40046604,
    "FS_IOC_FSSETXATTR": 0x401C5820,
    "FS_IOC_SET_ENCRYPTION_POLICY": 0x800C6613,  # an empty directory the uid owns, for good
    "FS_IOC_ENABLE_VERITY": 0x40806685,  # makes a file the uid may write read-only for good
}  # fmt: skip

#: (syscall, index of its flags argument or None when it always creates, index of its mode).
_CREATING = (("open", 1, 2), ("openat", 2, 3), ("creat", None, 1), ("mknod", None, 1),
             ("mknodat", None, 2))  # fmt: skip

#: Calls that act on the pid in argument 0, allowed only for 0 (the caller itself).
_OWN_PID_ONLY = (
    "prlimit64", "sched_setscheduler", "sched_setparam", "sched_setaffinity", "sched_setattr",
    "migrate_pages", "move_pages", "get_robust_list",
)  # fmt: skip


def rules(*, allow_exec: bool) -> tuple[Rule, ...]:
    """Every rule of the filter, in the order it is built."""
    found = [Rule(name) for name in DENIED_SYSCALLS]
    # Every family but AF_UNIX: the inherited result pipe and broker socketpair are unix sockets,
    # and everything else is either the network (namespaced away, but AF_VSOCK is not namespaced
    # and reaches the hypervisor) or kernel attack surface (AF_PACKET, AF_NETLINK, AF_ALG, ...).
    # All 64 bits: a family with junk in the upper half is denied too. Unix datagram sockets
    # are refused because an unconnected one reaches any path with sendto, connect or not;
    # SOCK_STREAM and SOCK_SEQPACKET reach nothing without connect.
    for name in ("socket", "socketpair"):
        found.append(Rule(name, (_ne(0, _AF_UNIX),)))
        found += [Rule(name, (_socket_type(kind),)) for kind in (_SOCK_DGRAM, _SOCK_RAW)]
    # Set-id bits at creation: chmod is denied, so this is the other way to plant a set-uid
    # program. Only when the call creates (glibc passes mode 0 otherwise, but raw callers may
    # leave junk there, which the kernel ignores). openat2's mode is in memory out of reach:
    # a set-id file it creates is empty, and every way to fill it strips the bit (no CAP_FSETID).
    for name, flags, mode in _CREATING:
        for bit in _SET_ID_BITS:
            if flags is None:
                found.append(Rule(name, (_has(mode, bit),)))
                continue
            for creates in (_O_CREAT, _O_TMPFILE):
                found.append(Rule(name, (_has(flags, creates), _has(mode, bit))))
    found += [Rule("ioctl", (_is(1, command),)) for command in FS_ATTRIBUTE_IOCTLS.values()]
    # Other processes: scheduling, limits, memory placement. Reads (getpriority, sched_get*,
    # ioprio_get) stay: what they show is public in `ps` and a pid's existence already shows
    # through kill(); only a pid namespace would hide it.
    found += [Rule(name, (_ne(0, 0),)) for name in _OWN_PID_ONLY]
    for name, user in (("setpriority", _PRIO_USER), ("ioprio_set", _IOPRIO_WHO_USER)):
        found += [Rule(name, (_is(0, user),)), Rule(name, (_ne(1, 0),))]
    # A process that makes itself non-dumpable hides its descriptors (and the memfd/tmpfs
    # memory they hold) from the parent's counter on a host without a memory cgroup.
    found.append(Rule("prctl", (_is(0, _PR_SET_DUMPABLE),)))
    # clone's flags are a register seccomp can see: one rule per namespace flag.
    found += [Rule("clone", (_has(0, flag),)) for flag in _CLONE_NAMESPACE_FLAGS]
    # clone3 passes its flags in memory, out of seccomp's reach: ENOSYS makes glibc (>= 2.34, for
    # threads and posix_spawn) fall back to clone, whose flags the rules above check.
    found.append(Rule("clone3", errno=errno.ENOSYS))
    if not allow_exec:
        found.append(Rule("execve"))
    return tuple(found)


def _socket_type(kind: int) -> ArgCmp:
    """socket()'s type argument names ``kind`` (SOCK_NONBLOCK / SOCK_CLOEXEC bits aside)."""
    return ArgCmp(1, CMP_MASKED_EQ, _SOCK_TYPE_MASK, kind)
