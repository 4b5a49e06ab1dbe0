"""Class C of issue 9: a job changes metadata outside its grants, or plants a set-id program.

Layer: seccomp (EPERM) for every metadata call — Landlock has no hook on them, and an
unprivileged host's jobs own the host's files — plus the capability drop, which makes the kernel
strip S_ISUID from a set-uid file openat2 created (its mode is out of seccomp's reach) as soon as
anything is written to it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from plugbox.sandbox.run_identity import RUN_ID

from .conftest import ROOT, Host

OUTSIDE = (
    "chmod", "chown", "lchown", "utime", "setxattr", "lsetxattr", "removexattr",
    "fchmodat2_fd", "fchownat_fd", "utimensat_fd", "setxattrat_fd", "file_setattr_fd",
    "fchmodat_dir", "fchownat_dir", "utimensat_dir", "removexattrat_dir",
    "chmod_state", "chown_state", "utime_state", "fchmodat2_fd_state", "fchownat_fd_state",
    "utimensat_fd_state", "setxattrat_fd_state", "file_setattr_fd_state",
)  # fmt: skip


def _snapshot(path: Path) -> tuple[object, ...]:
    info = path.stat()
    try:
        xattrs = os.listxattr(path)
    except OSError:
        xattrs = []
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns, xattrs


def test_metadata_outside_the_workspace_cannot_change(host: Host) -> None:
    target = host.victim / "file.txt"
    assert host.cli("jobs", "list").returncode == 0  # the state directory exists from here
    before = {p: _snapshot(p) for p in (target, host.state)}
    attack = host.attack("metadata-outside")
    assert attack.control["stat"][0] == target.stat().st_mode  # it saw the victim: it ran
    for name in OUTSIDE:
        attack.stopped(name, errno.EPERM)  # seccomp, whichever path, fd or *at form
    # ioctl on a file it may read: seccomp as root (the job owns it); the kernel's ownership
    # check for an unprivileged host (the installed plugin belongs to root) — EPERM either way.
    attack.stopped("ioctl_setflags", errno.EPERM)
    attack.stopped("ioctl_fssetxattr", errno.EPERM)
    assert _snapshot(target) == before[target]
    mode, uid, gid, mtime, xattrs = _snapshot(host.state)  # the host itself writes the store,
    assert (mode, uid, gid, xattrs) == before[host.state][:3] + before[host.state][4:]
    assert mtime != 2_000_000_000  # so its mtime moves, but not to the job's 2 s


def test_no_set_id_program_can_be_planted(host: Host) -> None:
    attack = host.attack("setid-create")
    assert attack.control["plain"] == 0o644 or attack.control["plain"] & 0o600  # control ran
    for name in ("open_setuid", "open_setgid", "o_tmpfile", "mknod", "mknodat", "chmod_u_s",
                 "fchmod_g_s"):  # fmt: skip
        attack.stopped(name, errno.EPERM)
    # openat2 made a set-uid file (seccomp cannot read its mode) — empty; the write that
    # filled it took the bit away: the job holds no CAP_FSETID.
    openat2 = attack.control["openat2"]
    assert openat2["created"] & stat.S_ISUID
    assert not openat2["filled"] & stat.S_ISUID
    attack.stopped("openat2_kept_set_uid")
    planted = [
        (p, oct(p.stat().st_mode))
        for p in host.workspace.rglob("*")
        if p.is_file() and p.stat().st_mode & (stat.S_ISUID | stat.S_ISGID) and p.stat().st_size
    ]
    assert not planted, f"set-id files with content in the workspace: {planted}"


def test_a_job_holds_no_capability(host: Host) -> None:
    attack = host.attack("capabilities")
    held = attack.control
    # It ran, as this uid: a root host's run uid (test_run_identity.py), else the host user's.
    assert held["uid"][0] == (RUN_ID if host.kind == ROOT else host.uid)
    sets = ("effective", "permitted", "inheritable", "ambient", "bounding")
    assert {s: held[s] for s in sets} == dict.fromkeys(sets, 0)
    assert held["no_new_privs"] == 1
    attack.stopped("regain_cap_fowner", errno.EPERM)
