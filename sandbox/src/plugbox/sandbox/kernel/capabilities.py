"""Dropping every Linux capability from a run child, so job code never holds one.

A root host's run child starts with every capability of the initial user namespace; on an
unprivileged host that shares the zygote's user namespace (:mod:`.namespaces`) it holds every
capability *of that namespace*. Landlock has no hook on metadata calls, so a kept ``CAP_FOWNER``
or ``CAP_CHOWN`` let a root job chmod, chown and re-date any file on the machine, and a kept
``CAP_FSETID`` let a write keep a set-uid bit. The child therefore drops all of them — effective,
permitted, inheritable, ambient and the bounding set — after Landlock and before seccomp
(:func:`drop_all`), and checks that they are gone.

Three further locks make sure nothing brings one back:

* the bounding set is emptied, so ``execve`` of a set-uid-root or file-capability binary, or of
  anything as uid 0, grants nothing (needs ``CAP_SETPCAP``, which is dropped last);
* ``no_new_privs`` is set here too, not only by the seccomp layer, so set-uid bits are ignored at
  ``execve`` even on a machine without seccomp — where an unprivileged host cannot empty its
  bounding set, this is what stops ``sudo`` or ``su`` from running with privileges;
* the secure bits ``NOROOT`` and ``NO_SETUID_FIXUP`` are set and locked (root hosts), so uid 0
  gets no capabilities at ``execve`` by being uid 0.

The consequence for a root host: its jobs act on files as a plain owner would — they cannot read
or write files of other users that their mode bits refuse, which is why a later step runs root
hosts' jobs under a dedicated uid whose workspace the parent prepares.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass

from plugbox.sandbox._libc import LIBC

__all__ = [
    "CAP_SYS_RESOURCE",
    "CapabilitiesKept",
    "CapabilitySets",
    "bounding_refilled",
    "drop",
    "drop_all",
    "empty_inherited_bounding",
    "held",
    "snapshot",
]

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_SETPCAP = 8
CAP_SYS_RESOURCE = 24

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_GET_SECUREBITS = 27
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_IS_SET = 1
_PR_CAP_AMBIENT_CLEAR_ALL = 4
#: SECBIT_NOROOT | its lock | SECBIT_NO_SETUID_FIXUP | its lock (<linux/securebits.h>).
_SECURE_NOROOT = 0x01 | 0x02 | 0x04 | 0x08
_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class CapabilitiesKept(OSError):  # noqa: N818 - the name reads as the condition
    """A capability survived :func:`drop_all`: the child must not run job code."""


@dataclass(frozen=True, slots=True)
class CapabilitySets:
    """Every capability set of this process as bit masks (bit n = capability n), and the locks."""

    effective: int
    permitted: int
    inheritable: int
    ambient: int
    bounding: int
    no_new_privs: bool
    securebits: int

    @property
    def none_held(self) -> bool:
        """Whether no set grants anything, now or after an ``execve``."""
        return not (
            self.effective | self.permitted | self.inheritable | self.ambient | self.bounding
        )


def _last_cap() -> int:
    try:
        with open(_LAST_CAP_FILE) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one Linux 6.x knows


#: Read once at import (in the zygote): a confined child may not read /proc.
LAST_CAP = _last_cap()


def _capget() -> ctypes.Array[_CapData] | None:
    if LIBC is None:
        return None
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if LIBC.capget(ctypes.byref(header), data) != 0:
        return None
    return data


def drop(capabilities: Iterable[int], *, every_set: bool = False) -> None:
    """Remove ``capabilities`` from this process's sets and bounding set, and clear ambient.

    ``every_set``: clear the effective, permitted and inheritable sets entirely, whatever
    ``capabilities`` names (which then only says what to drop from the bounding set).

    A process that does not hold one has nothing to drop; where capabilities cannot be changed
    (not Linux) nothing happens, which is what holding none amounts to anyway.
    """
    data = _capget()
    if LIBC is None or data is None:
        return
    # The bounding set first, CAP_SETPCAP (which it needs) last of all.
    caps = sorted(set(capabilities), key=lambda cap: (cap == CAP_SETPCAP, cap))
    for cap in caps:
        LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    if every_set:
        data = (_CapData * 2)()
    for cap in () if every_set else caps:
        word, bit = divmod(cap, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    LIBC.capset(ctypes.byref(header), data)
    LIBC.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def drop_bounding() -> None:
    """Empty the bounding set; needs ``CAP_SETPCAP``, so call it before a uid switch drops that.

    Nothing to do in a child that inherited it empty (:func:`empty_inherited_bounding`).
    """
    if LIBC is None or _INHERITED.bounding_empty:
        return
    for cap in range(LAST_CAP + 1):
        LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)


def drop_all() -> None:
    """Drop every capability from every set, lock uid 0 out of them, and verify (run child).

    Raises :class:`CapabilitiesKept` when one survives, so a child that could not drop them
    never reaches job code. The bounding set may stay full only where it could never be emptied
    (no ``CAP_SETPCAP``: an unprivileged process outside a user namespace); ``no_new_privs``
    then keeps ``execve`` from using it.

    A child of a zygote that emptied its own bounding set (:func:`empty_inherited_bounding`)
    skips the 41 drops and 41 reads of it: the set only ever shrinks across ``fork``, ``execve``
    and credential changes, and the one thing that refills it — a new user namespace — clears
    the mark (:func:`bounding_refilled`). The ambient set needs no read either: the kernel keeps
    it inside permitted ∩ inheritable, which are checked to be empty.
    """
    if LIBC is None:
        return
    bounding_empty = _INHERITED.bounding_empty
    holds_setpcap = bool(_effective_word(0) & (1 << CAP_SETPCAP))
    could_empty_bounding = bounding_empty or (
        holds_setpcap and LIBC.prctl(_PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) == 1
    )
    if holds_setpcap:
        # Needs CAP_SETPCAP, so before the drop; harmless to leave unset where it fails.
        bits = LIBC.prctl(_PR_GET_SECUREBITS, 0, 0, 0, 0)
        if bits >= 0:
            LIBC.prctl(_PR_SET_SECUREBITS, bits | _SECURE_NOROOT, 0, 0, 0)
    drop(() if bounding_empty else range(LAST_CAP + 1), every_set=True)
    LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    data = _capget()
    kept = 0
    if data is not None:
        kept = (
            _word_pair(data, "effective")
            | _word_pair(data, "permitted")
            | _word_pair(data, "inheritable")
        )
    if could_empty_bounding and not bounding_empty:
        kept |= _bounding()
    no_new_privs = LIBC.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
    if kept or not no_new_privs:
        raise CapabilitiesKept(1, f"capabilities survived the drop: {snapshot()}")


class _Inherited:
    """What this process knows it inherited (set in the zygote, read in its run children)."""

    bounding_empty = False


_INHERITED = _Inherited()


def empty_inherited_bounding() -> bool:
    """In the zygote, once: empty the bounding set, so every run child inherits it empty.

    The zygote never executes a program and needs no capability it does not already hold, so it
    gives up the bounding set at start rather than each child paying to drop and re-read it.
    Verified here; returns whether it is empty (it stays full where it cannot be emptied: no
    ``CAP_SETPCAP``, and each child then drops and checks it as before).
    """
    if LIBC is None:
        return False
    if _effective_word(0) & (1 << CAP_SETPCAP):
        drop_bounding()
    _INHERITED.bounding_empty = _bounding() == 0
    return _INHERITED.bounding_empty


def bounding_refilled() -> None:
    """After ``unshare(CLONE_NEWUSER)``: the kernel gave this process a full bounding set in its
    new namespace, so :func:`drop_all` must empty and check it again."""
    _INHERITED.bounding_empty = False


def _bounding() -> int:
    if LIBC is None:
        return 0
    mask = 0
    for cap in range(LAST_CAP + 1):
        if LIBC.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
            mask |= 1 << cap
    return mask


def _word_pair(data: ctypes.Array[_CapData], field: str) -> int:
    return int(getattr(data[0], field)) | (int(getattr(data[1], field)) << 32)


def _effective_word(word: int) -> int:
    data = _capget()
    return int(data[word].effective) if data is not None else 0


def snapshot() -> CapabilitySets:
    """This process's capability sets, read with ``capget`` and ``prctl`` (no ``/proc``: a
    confined child cannot read it)."""
    data = _capget()
    if LIBC is None or data is None:
        return CapabilitySets(0, 0, 0, 0, 0, no_new_privs=False, securebits=0)
    ambient = 0
    for cap in range(LAST_CAP + 1):
        if LIBC.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1:
            ambient |= 1 << cap
    bounding = _bounding()
    return CapabilitySets(
        effective=_word_pair(data, "effective"),
        permitted=_word_pair(data, "permitted"),
        inheritable=_word_pair(data, "inheritable"),
        ambient=ambient,
        bounding=bounding,
        no_new_privs=LIBC.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1,
        securebits=max(LIBC.prctl(_PR_GET_SECUREBITS, 0, 0, 0, 0), 0),
    )


def held() -> tuple[int, int]:
    """This process's effective and bounding capability masks."""
    sets = snapshot()
    return sets.effective, sets.bounding
