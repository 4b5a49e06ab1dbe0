"""Whether (and how) this machine lets the host make a cgroup per run: probed once per process.

The probe creates and removes a directory in each candidate hierarchy, because permission bits on
cgroupfs do not tell whether a write will be accepted (delegation, read-only mounts,
``cgroup.max.descendants``). The layouts it can find are described in :mod:`.cgroups`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from plugbox.sandbox.limits.cgroupfs import read_words, write

PARENT_NAME = "plugbox"

Role = Literal["memory", "pids", "cpu", "kill", "freeze"]


@dataclass(frozen=True)
class CgroupSupport:
    """What per-run cgroups can do on this machine, for ``plugbox doctor`` and the run record.

    ``version`` is the hierarchy that holds the limits (``None``: no cgroups can be created here);
    ``kill`` means the whole run can be stopped at once (``cgroup.kill``, or freeze-then-kill).
    """

    version: Literal[1, 2] | None
    memory: bool
    pids: bool
    cpu: bool
    kill: bool
    detail: str


@dataclass(frozen=True)
class Plan:
    """Where run directories are made: a parent directory per role (roles may share one)."""

    support: CgroupSupport
    parents: Mapping[Role, Path]
    v2_parent: Path | None
    v2_enable: tuple[str, ...]


def cgroup_support() -> CgroupSupport:
    """Probe once per process whether (and how) per-run cgroups can be created here.

    The probe creates and removes a directory in each candidate hierarchy: permission bits on
    cgroupfs do not tell whether a write will be accepted (delegation, read-only mounts,
    ``cgroup.max.descendants``).
    """
    return plan().support


def plan_for(*, unified: bool) -> Plan:
    return plan() if unified else plan_v1_only()


@functools.cache
def plan() -> Plan:
    """The probe's result, cached for the life of the process (a registry of one, on purpose)."""
    return _probe(use_unified=True)


@functools.cache
def plan_v1_only() -> Plan:
    return _probe(use_unified=False)


# -- probing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _probe(*, use_unified: bool) -> Plan:
    if not sys.platform.startswith("linux"):
        return _unsupported(f"cgroups are Linux-only (this is {sys.platform})")
    try:
        own = _own_dirs(_mounts(), Path("/proc/self/cgroup").read_text())
    except OSError as err:
        return _unsupported(f"cannot read the process's cgroups: {err}")
    notes: list[str] = []
    v2_dir = own.get("") if use_unified else None
    if v2_dir is not None:
        plan = _probe_v2(v2_dir, notes)
        if plan is not None:
            return plan
    return _probe_v1(own, v2_dir, notes)


def _probe_v2(v2_dir: Path, notes: list[str]) -> Plan | None:
    """Everything in one cgroup2 directory, when memory and pids can be enabled for our runs."""
    available = set(read_words(v2_dir / "cgroup.controllers"))
    missing = sorted({"memory", "pids"} - available)
    if missing:
        notes.append(f"cgroup v2 at {v2_dir} lacks {', '.join(missing)}")
        return None
    parent = v2_dir / PARENT_NAME
    enable = ("memory", "pids")
    try:
        _enable_controllers(v2_dir, enable)
        files = _probe_parent(parent, enable)
    except OSError as err:
        notes.append(f"cgroup v2 memory+pids not delegable under {v2_dir}: {err.strerror}")
        return None
    # cgroup.kill: Linux 5.14; before that (5.2+) cgroup.freeze lets the kill loop win.
    kill = bool({"cgroup.kill", "cgroup.freeze"} & files)
    support = CgroupSupport(
        2, True, True, True, kill, f"cgroup v2 at {parent} (memory, pids, cpu, kill)"
    )
    return Plan(support, dict.fromkeys(_ROLES, parent), parent, enable)


def _probe_v1(own: Mapping[str, Path], v2_dir: Path | None, notes: list[str]) -> Plan:
    """v1 memory and pids for the limits; a controller-less cgroup2 directory for kill and CPU
    when there is one (hybrid), else v1 freezer and cpuacct."""
    parents: dict[Role, Path] = {}
    for role in ("memory", "pids"):
        usable = _usable_parent(own.get(role), notes, role)
        if usable is not None:
            parents[role] = usable[0]
    if not parents:
        return _unsupported("; ".join(notes) or "no cgroup hierarchy is mounted")
    hybrid = _usable_parent(v2_dir, notes, "cgroup2") if v2_dir is not None else None
    if hybrid is not None:
        parents["cpu"] = hybrid[0]  # cpu.stat's usage_usec needs no controller
    elif (cpuacct := _usable_parent(own.get("cpuacct"), notes, "cpuacct")) is not None:
        parents["cpu"] = cpuacct[0]
    if hybrid is not None and "cgroup.kill" in hybrid[1]:
        parents["kill"] = hybrid[0]
    elif (freezer := _usable_parent(own.get("freezer"), notes, "freezer")) is not None:
        parents["freeze"] = parents["kill"] = freezer[0]
    layout = "hybrid v1+v2" if hybrid is not None else "v1"
    where = ", ".join(f"{role}={path}" for role, path in parents.items())
    detail = f"cgroup {layout}: {where}" + (f" ({'; '.join(notes)})" if notes else "")
    # kill is always possible: without cgroup.kill or a freezer, the kill loop still ends because
    # pids.max bounds the forks it races with.
    support = CgroupSupport(
        1, "memory" in parents, "pids" in parents, "cpu" in parents, True, detail
    )
    return Plan(support, parents, None, ())


_ROLES: tuple[Role, ...] = ("memory", "pids", "cpu", "kill", "freeze")


def _unsupported(detail: str) -> Plan:
    return Plan(CgroupSupport(None, False, False, False, False, detail), {}, None, ())


def _usable_parent(
    own: Path | None, notes: list[str], what: str
) -> tuple[Path, frozenset[str]] | None:
    """``own/plugbox`` and the files a run directory there gets, or None if none can be made."""
    if own is None:
        return None
    parent = own / PARENT_NAME
    try:
        files = _probe_parent(parent, ())
    except OSError as err:
        notes.append(f"{what}: cannot create cgroups under {own}: {err.strerror}")
        return None
    return parent, files


def _probe_parent(parent: Path, enable: tuple[str, ...]) -> frozenset[str]:
    """Create and remove a child of ``parent``; return the interface files the child had."""
    created = ensure_parent(parent, enable)
    probe = parent / f"probe-{os.getpid()}-{secrets.token_hex(2)}"
    probe.mkdir()
    try:
        files = frozenset(os.listdir(probe))
    finally:
        probe.rmdir()
    if created:
        with contextlib.suppress(OSError):
            parent.rmdir()
    return files


def favors_dynamic_moves() -> bool:
    """Whether a cgroup hierarchy is mounted with ``favordynmods`` (Linux 6.0+).

    Moving a process into a cgroup takes the kernel's threadgroup lock for writing, which
    otherwise waits for an RCU grace period whenever moves have paused for a moment — about one
    run in thirty here, at up to ~15 ms each. ``favordynmods`` trades a little on every fork and
    exit for moves that never wait. It is the operator's call, so plugbox only reports it.
    """
    return any("favordynmods" in mount.options for mount in _mounts())


def _mounts() -> list[_Mount]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            _Mount(
                root=_unescape(fields[3]),
                point=Path(_unescape(fields[4])),
                fstype=tail[0],
                options=frozenset(tail[2].split(",")),
            )
        )
    return mounts


def _own_dirs(mounts: list[_Mount], proc_cgroup: str) -> dict[str, Path]:
    """Map each controller (``""`` for cgroup2) to this process's own cgroup directory."""
    own: dict[str, Path] = {}
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        names = [""] if hierarchy == "0" and not controllers else controllers.split(",")
        for mount in mounts:
            if (mount.fstype == "cgroup2") != (names == [""]):
                continue
            if names != [""] and not set(names) <= mount.options:
                continue
            # A mount may show a subtree (bind mount, cgroup namespace): map the path into it.
            root = mount.root.rstrip("/")
            if root and path != root and not path.startswith(root + "/"):
                continue
            directory = mount.point / path[len(root) :].lstrip("/")
            if directory.is_dir():
                for name in names:
                    own.setdefault(name, directory)
                break
    return own


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


# -- directories --------------------------------------------------------------------------------
def ensure_parent(parent: Path, enable: tuple[str, ...]) -> bool:
    created = True
    try:
        parent.mkdir()
    except FileExistsError:
        created = False
    if enable:
        # Always written, not only when we made the directory: a concurrent create() may have made
        # it a moment ago and not yet enabled the controllers.
        _enable_controllers(parent, enable)
    return created


def _enable_controllers(directory: Path, controllers: tuple[str, ...]) -> None:
    enabled = set(read_words(directory / "cgroup.subtree_control"))
    if not set(controllers) <= enabled:
        write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in controllers))
