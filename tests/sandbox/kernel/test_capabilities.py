"""Capabilities: a forked child drops every one, and what root could do with them stops working.

The attacks are the ones a kept file capability allowed (issue 9, class C): changing the mode,
owner or times of a file the process does not own, and keeping a set-uid bit through a write. As
root each is first shown to work in a child that still holds its capabilities, so the ``EPERM``
after the drop is the drop's doing (no seccomp filter is loaded in these tests).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from plugbox.sandbox.kernel import network_namespace_available, unshare_network
from plugbox.sandbox.kernel.capabilities import (
    CAP_CHOWN,
    CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH,
    CAP_FOWNER,
    CAP_FSETID,
    CAP_SETPCAP,
    CapabilitySets,
    drop_all,
    snapshot,
)

from .conftest import errno_of, in_child

ROOT = os.geteuid() == 0
OTHER_UID = 4444
needs_root = pytest.mark.skipif(not ROOT, reason="only root starts with capabilities to drop")


def test_a_dropped_child_holds_no_capability_in_any_set() -> None:
    def child() -> CapabilitySets:
        drop_all()
        return snapshot()

    sets = in_child(child).unwrap()
    assert (sets.effective, sets.permitted, sets.inheritable, sets.ambient) == (0, 0, 0, 0)
    assert sets.no_new_privs
    if ROOT:  # an unprivileged process cannot empty its bounding set (no CAP_SETPCAP)
        assert sets.bounding == 0
        assert sets.none_held
        assert sets.securebits & 0x0F == 0x0F  # NOROOT and NO_SETUID_FIXUP, both locked


@needs_root
def test_the_control_child_starts_with_every_capability() -> None:
    sets = in_child(snapshot).unwrap()
    # A container may withhold a few (CAP_SYS_RESOURCE here); the ones the attacks need are held.
    needed = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_SETPCAP}
    assert all(sets.effective >> cap & 1 for cap in needed)
    assert sets.bounding & sets.effective == sets.effective
    assert not sets.none_held


@pytest.mark.skipif(not network_namespace_available(), reason="needs a network namespace")
def test_capabilities_of_a_user_namespace_are_dropped_too() -> None:
    """Unprivileged, unshare_network enters a user namespace where the child holds every
    capability of that namespace (CAP_NET_ADMIN over its network): they go as well."""

    def child() -> tuple[int, CapabilitySets]:
        unshare_network()
        before = snapshot().effective
        drop_all()
        return before, snapshot()

    before, after = in_child(child).unwrap()
    assert before != 0  # root, or every capability of the new user namespace
    assert after.none_held


def _victim(tmp_path: Path) -> Path:
    target = tmp_path / "victim.txt"
    target.write_text("victim\n")
    os.chown(target, OTHER_UID, OTHER_UID)
    target.chmod(0o644)
    os.utime(target, (1_000_000, 1_000_000))
    return target


@needs_root
@pytest.mark.parametrize("dropped", [False, True], ids=["control", "dropped"])
def test_metadata_of_a_file_owned_by_another_user(tmp_path: Path, dropped: bool) -> None:
    """CAP_FOWNER / CAP_CHOWN let root chmod, chown, re-date and tag any file; without them
    the kernel answers EPERM (Landlock has no hook on any of these calls)."""
    tmp_path.chmod(0o755)
    target = _victim(tmp_path)
    private = _private(tmp_path)

    def child() -> dict[str, int]:
        if dropped:
            drop_all()
        return {
            "chmod": errno_of(lambda: os.chmod(target, 0o4777)),
            "chown": errno_of(lambda: os.chown(target, 0, 0)),
            "utime": errno_of(lambda: os.utime(target, (2, 2))),
            "setxattr": errno_of(lambda: os.setxattr(target, "user.x", b"1")),
            "read_0600": errno_of(lambda: open(private).close()),
        }

    result = in_child(child).unwrap()
    if not dropped:
        assert result == dict.fromkeys(result, 0)
        return
    assert result == {
        "chmod": errno.EPERM,
        "chown": errno.EPERM,
        "utime": errno.EPERM,
        "setxattr": errno.EACCES,  # user.* needs write permission, which the mode refuses
        "read_0600": errno.EACCES,  # CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH are gone too
    }
    after = target.stat()
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_mtime) == (0o644, OTHER_UID, 1e6)


def _private(directory: Path) -> Path:
    private = directory / "private.txt"
    private.write_text("secret\n")
    os.chown(private, OTHER_UID, OTHER_UID)
    private.chmod(0o600)
    return private


@needs_root
@pytest.mark.parametrize("dropped", [False, True], ids=["control", "dropped"])
def test_a_write_strips_the_set_uid_bit_without_cap_fsetid(tmp_path: Path, dropped: bool) -> None:
    """A set-uid file that slips through (openat2's mode is out of seccomp's reach) is empty;
    filling it is a write, and the kernel strips S_ISUID on it unless the writer has
    CAP_FSETID — which a root child kept before, and keeps no longer."""
    target = tmp_path / "planted"

    def child() -> int:
        if dropped:
            drop_all()
        fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o4755)
        os.fchmod(fd, 0o4755)  # unfiltered here: umask and creation rules aside, the bit is set
        created = os.fstat(fd).st_mode
        os.write(fd, b"#!/bin/sh\n")
        os.close(fd)
        assert created & stat.S_ISUID
        return stat.S_IMODE(os.stat(target).st_mode)

    assert in_child(child).unwrap() == (0o755 if dropped else 0o4755)


@needs_root
@pytest.mark.parametrize("dropped", [False, True], ids=["control", "dropped"])
def test_a_set_uid_program_grants_nothing_after_the_drop(tmp_path: Path, dropped: bool) -> None:
    """With the bounding set empty and no_new_privs set, exec of anything — as uid 0 too —
    brings no capability back: the program's own capget shows zero."""
    tmp_path.chmod(0o755)
    reader = "import ctypes,sys;h=(ctypes.c_uint32*2)(0x20080522,0);d=(ctypes.c_uint32*6)();"
    reader += "ctypes.CDLL(None).capget(h,d);print(d[0]|d[3]<<32)"
    python = os.path.realpath(sys.executable)

    def child() -> int:
        if dropped:
            drop_all()
        out = subprocess.run([python, "-c", reader], capture_output=True, text=True, check=True)
        return int(out.stdout)

    effective = in_child(child).unwrap()
    assert (effective == 0) is dropped
