"""One control group per run: tree-wide memory and process ceilings, exact accounting, a sure kill.

rlimits bind one process; a cgroup binds the run. Every process the job starts — children,
grandchildren, a ``setsid`` double-forked daemon — stays in the run's cgroup, so the kernel caps
their *sum* (``memory_mb``, ``processes``), counts their CPU and peak memory even after they exit,
and lists them in ``cgroup.procs`` with pids that are valid in the parent's pid namespace.

Where the directories go (see docs/adr/0005-resource-limits.md): under the host process's *own*
cgroup in each hierarchy, in a shared ``plugbox`` directory (``<own>/plugbox/run-<id>-<rand>``), so
whatever limits the host itself runs under still apply to its runs. Three layouts:

* **v2** — one directory in the unified hierarchy, when the ``memory`` and ``pids`` controllers
  can be enabled there (root, or a delegated subtree whose own cgroup holds no processes);
* **v1** — a directory in each of the ``memory``, ``pids``, ``cpuacct`` and ``freezer``
  hierarchies (whichever are mounted and writable);
* **hybrid** — v1 ``memory`` and ``pids`` for the limits, plus a cgroup2 directory for
  ``cgroup.kill`` and ``cpu.stat``, which need no controller. This is what systemd's "hybrid"
  machines (and the development and CI machines) offer.

Kernel traps recorded here:

* ``cgroup.procs`` never lists zombies, but the pids controller keeps counting a zombie until its
  parent reaps it; ``rmdir`` succeeds once ``cgroup.procs`` is empty.
* The no-internal-processes rule of v2: controllers can be enabled in a cgroup's
  ``cgroup.subtree_control`` only while it holds no processes (the root cgroup excepted). A host
  inside a delegated cgroup must therefore live in a leaf of its own (systemd: ``Delegate=yes`` with
  ``DelegateSubgroup=``) for v2 limits; the kill and CPU accounting work either way.
* tmpfs pages (``/dev/shm``) are charged to the cgroup of the process that wrote them, so a tmpfs
  bomb is stopped by the memory limit (the writer is OOM-killed), but the *file* outlives the run and
  stays charged to the host's cgroup. Landlock keeps ``/dev/shm`` out of a job's reach.
* A process that can write to cgroupfs (root without Landlock) can move itself out of its cgroup.
  The cgroup is a boundary only together with the filesystem layer, which never grants ``/sys``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from plugbox.sandbox.limits.cgroup_probe import (
    CgroupSupport,
    Plan,
    Role,
    cgroup_support,
    ensure_parent,
    plan,
    plan_for,
)
from plugbox.sandbox.limits.cgroupfs import (
    read_int,
    read_keyed,
    read_pids,
    read_text,
    write,
)
from plugbox.sdk.permissions import Quotas

__all__ = ["CgroupSupport", "RunCgroup", "cgroup_support", "join_cgroup"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024

KILL_TIMEOUT_S = 5.0

RMDIR_TIMEOUT_S = 2.0

FREEZE_TIMEOUT_S = 1.0

#: A recycled memory cgroup may keep at most this much charged from its last run (page cache,
#: kernel objects of exited processes the kernel frees a moment later), which the next run's peak
#: and limit then include; more, even after ``memory.force_empty``, and it is removed instead.
RECYCLE_MAX_LEFT_BYTES = 4 * MIB


class RunCgroup:
    """The cgroup(s) of one run. Made by the parent before the fork; the child is moved in before
    any plugin code runs (see :meth:`add` and :meth:`join`)."""

    def __init__(self, dirs: Mapping[Role, Path], version: Literal[1, 2]) -> None:
        self._dirs = dict(dirs)
        self._version: Literal[1, 2] = version
        self._unique = tuple(dict.fromkeys(dirs.values()))
        self._procs = tuple(str(directory / "cgroup.procs") for directory in self._unique)
        self._kill: Path | Literal[False] | None = False  # False: not looked up yet
        self._closed = False
        # Paths (and whether optional files exist) worked out once: a recycled cgroup serves
        # many runs, each reading and writing a dozen of these files on its trigger -> outcome path.
        self._paths: dict[tuple[Role, str], str] = {}
        self._exists: dict[tuple[Role, str], bool] = {}
        # Set by kill_all when it saw every hierarchy empty; a later add() clears it.
        self._seen_empty = False
        # Counters the kernel never resets, as they stood when this cgroup last became ready for
        # a run (see recycle): accounting reports what happened since.
        self._cpu_base_usec = 0
        self._oom_base = 0
        self._pids_max_base = 0

    @classmethod
    def create(cls, run_id: str, quotas: Quotas, *, unified: bool = True) -> RunCgroup | None:
        """Make the run's cgroup with ``memory_mb`` and ``processes`` as kernel limits.

        Returns ``None`` when this machine offers no usable cgroups, or when creating this one
        failed (logged): the run then relies on rlimits and the watchdog and must say so.
        ``unified=False`` ignores the cgroup2 hierarchy on a hybrid machine (the pure-v1 path,
        with freezer-based kill and ``cpuacct``; tests use it to exercise that path).
        """
        plan = plan_for(unified=unified)
        if plan.support.version is None:
            return None
        name = f"run-{_safe_name(run_id)}-{secrets.token_hex(4)}"
        made: list[Path] = []
        try:
            dirs: dict[Role, Path] = {}
            for role, parent in plan.parents.items():
                directory = parent / name
                if directory not in made:
                    _make_run_dir(plan, parent, directory)
                    made.append(directory)
                dirs[role] = directory
            cgroup = cls(dirs, plan.support.version)
            cgroup._apply_limits(quotas)
        except OSError as err:
            log.warning("could not create the cgroup of run %s: %s", run_id, err)
            for directory in reversed(made):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            return None
        return cgroup

    def _file(self, role: Role, name: str) -> str:
        """The path of file ``name`` in the run's directory for ``role`` (which must exist)."""
        path = self._paths.get((role, name))
        if path is None:
            path = self._paths[(role, name)] = str(self._dirs[role] / name)
        return path

    def _has(self, role: Role, name: str) -> bool:
        """Whether the kernel offers file ``name`` for ``role`` (it never changes for a cgroup)."""
        found = self._exists.get((role, name))
        if found is None:
            found = self._exists[(role, name)] = role in self._dirs and os.path.exists(
                self._file(role, name)
            )
        return found

    # -- membership ---------------------------------------------------------------------------
    @property
    def paths(self) -> tuple[Path, ...]:
        """The run's directories, one per hierarchy in use."""
        return self._unique

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files a process writes ``0`` to in order to join (see :func:`join_cgroup`)."""
        return self._procs

    def add(self, pid: int) -> None:
        """Move process ``pid`` (a pid in the caller's namespace; 0 = the caller) into the run.

        The parent may call this right after the fork **only if the child waits for a go-ahead**
        before running plugin code — otherwise the child could fork before it is moved, and that
        grandchild would stay outside. A child can also join by itself (:meth:`join`), which has no
        such window. Moving is idempotent; a pid that is gone raises :class:`ProcessLookupError`.
        """
        self._seen_empty = False
        for procs in self.procs_files:
            write(procs, str(pid))

    def join(self) -> None:
        """Move the calling process in: the first thing a run child does, before plugin code."""
        join_cgroup(self.procs_files)

    def pids(self) -> list[int]:
        """Live processes of the run, from ``cgroup.procs`` (kernel-reported, safe to signal)."""
        found: set[int] = set()
        for procs in self._procs:
            found.update(read_pids(procs))
        return sorted(found)

    # -- accounting ---------------------------------------------------------------------------
    def peak_memory_mb(self) -> float:
        """Most memory ever charged to the run (anonymous, tmpfs and page cache; exited processes too)."""
        if "memory" not in self._dirs:
            return 0.0
        if self._version == 2:
            # memory.peak arrived in 5.19; before that the current charge is the best there is.
            peak = read_int(self._file("memory", "memory.peak")) or read_int(
                self._file("memory", "memory.current")
            )
        else:
            peak = read_int(self._file("memory", "memory.max_usage_in_bytes"))
        return (peak or 0) / MIB

    def current_memory_mb(self) -> float:
        """Memory charged to the run now, page cache included (the kernel reclaims that first)."""
        if "memory" not in self._dirs:
            return 0.0
        name = "memory.current" if self._version == 2 else "memory.usage_in_bytes"
        return (read_int(self._file("memory", name)) or 0) / MIB

    def cpu_ms(self) -> int:
        """CPU time (user + system) of every process that ever ran in the run, exited ones too."""
        directory = self._dirs.get("cpu")
        if directory is None:
            return 0
        return (self._cpu_usec() - self._cpu_base_usec) // 1000

    def oom_killed(self) -> bool:
        """True when the kernel's OOM killer killed a process of the run at the memory limit."""
        return self._oom_count() > self._oom_base

    def pids_limit_hit(self) -> bool:
        """True when a fork or thread creation failed because the run reached ``processes``."""
        return self._pids_max_count() > self._pids_max_base

    def _cpu_usec(self) -> int:
        if "cpu" not in self._dirs:
            return 0
        if self._has("cpu", "cpu.stat"):
            return read_keyed(self._file("cpu", "cpu.stat")).get("usage_usec", 0)
        return (read_int(self._file("cpu", "cpuacct.usage")) or 0) // 1000

    def _oom_count(self) -> int:
        if "memory" not in self._dirs:
            return 0
        if self._version == 2:
            return read_keyed(self._file("memory", "memory.events")).get("oom_kill", 0)
        control = read_keyed(self._file("memory", "memory.oom_control"))
        if "oom_kill" in control:  # Linux >= 4.13
            return control["oom_kill"]
        return read_int(self._file("memory", "memory.failcnt")) or 0

    def _pids_max_count(self) -> int:
        if "pids" not in self._dirs:
            return 0
        return read_keyed(self._file("pids", "pids.events")).get("max", 0)

    # -- another run ----------------------------------------------------------------------------
    def recycle(self) -> bool:
        """Make this emptied cgroup ready for another run; False when it cannot be (close it).

        The run must be over (:meth:`kill_all`). The peak is reset, and counters that never reset
        become the baseline the next run's accounting starts from. Refused where the peak cannot
        be reset (cgroup v2's ``memory.peak``) or where the last run left more than
        :data:`RECYCLE_MAX_LEFT_BYTES` charged (page cache of files it wrote, tmpfs): the next
        run's peak and limit would include it.
        """
        if self._closed or (not self._seen_empty and self.pids()):
            return False
        if "memory" in self._dirs:
            if self._version == 2:
                return False
            # memory.force_empty only when needed: reclaiming costs more than a new cgroup, and
            # most runs leave no more than a trace. What it cannot reclaim (tmpfs files the run
            # left) means a fresh cgroup instead.
            if self._memory_left() > RECYCLE_MAX_LEFT_BYTES:
                with contextlib.suppress(OSError):
                    write(self._file("memory", "memory.force_empty"), "0")
                if self._memory_left() > RECYCLE_MAX_LEFT_BYTES:
                    return False
            try:
                write(self._file("memory", "memory.max_usage_in_bytes"), "0")
                with contextlib.suppress(OSError):  # only the fallback for oom_killed reads it
                    write(self._file("memory", "memory.failcnt"), "0")
            except OSError:
                return False
        self._cpu_base_usec = self._cpu_usec()
        self._oom_base = self._oom_count()
        self._pids_max_base = self._pids_max_count()
        return True

    def _memory_left(self) -> int:
        return read_int(self._file("memory", "memory.usage_in_bytes")) or 0

    def limit(self, quotas: Quotas) -> None:
        """Set ``memory_mb`` and ``processes`` (either unset: no limit) for the coming run."""
        self._apply_limits(quotas)

    # -- the end ------------------------------------------------------------------------------
    def signal_kill(self) -> None:
        """SIGKILL every process of the run now, without waiting for them to exit.

        One write to ``cgroup.kill`` where there is one: the kernel kills the whole tree, forks
        in flight included, and no pid read here can have been reused. Without it, each
        hierarchy's listed members are killed through pidfds. :meth:`kill_all` must still
        follow: it waits until the run is empty.
        """
        kill_file = self._kill_file()
        if kill_file is not None:
            with contextlib.suppress(FileNotFoundError):
                write(kill_file, "1")
            return
        for directory in self._unique:
            _kill_members(directory / "cgroup.procs")

    def kill_all(self) -> None:
        """SIGKILL every process of the run and wait until none is left (at most ~5 s).

        ``cgroup.kill`` (Linux 5.14+) kills the whole tree in the kernel, forks in flight included.
        Without it the run is frozen first so that nothing can fork while it is being killed, then
        every listed process is killed and the cgroup thawed so the kills take effect.
        """
        deadline = time.monotonic() + KILL_TIMEOUT_S
        delay = 0.00005
        rounds = 0
        self._seen_empty = False
        while members := self.pids():
            if time.monotonic() > deadline:
                log.warning(
                    "processes %s of %s survived SIGKILL for %.0f s", members, self, KILL_TIMEOUT_S
                )
                return
            kill_file = self._kill_file()
            if kill_file is not None:
                write(kill_file, "1")
            if kill_file is None or rounds:
                # Also the second line after cgroup.kill: a process that left the kill hierarchy
                # but not another one (only possible with write access to cgroupfs) is found here.
                with self._frozen():
                    for directory in self._unique:
                        _kill_members(directory / "cgroup.procs")
            # A SIGKILLed process needs ~0.5 ms to exit (a forked Python; more with a big address
            # space). Poll cgroup.procs on a short backoff: cgroup.events is pollable, but the
            # kernel rate-limits its notifications to one per 10 ms. While cgroup.kill's own
            # hierarchy still lists someone, reading the others too would only cost time; the
            # loop's test reads them all before it trusts that the run is empty.
            watched = str(kill_file.parent / "cgroup.procs") if kill_file is not None else None
            while True:
                time.sleep(delay)
                delay = min(delay * 1.5, 0.02)
                if watched is None or not read_pids(watched) or time.monotonic() > deadline:
                    break
            rounds += 1
        self._seen_empty = True

    def close(self) -> None:
        """Kill what is left, then remove the run's directories.

        The shared parent stays for the next run (making and removing a memory cgroup costs the
        kernel more than the run itself); :func:`remove_empty_parents` tidies it when the runner
        closes.
        """
        if self._closed:
            return
        self.kill_all()
        for directory in self._unique:
            _rmdir_retrying(directory)
        self._closed = True

    def __enter__(self) -> RunCgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunCgroup({', '.join(str(d) for d in self._unique)})"

    # -- internals ----------------------------------------------------------------------------
    def _apply_limits(self, quotas: Quotas) -> None:
        # Every value is written, "no limit" included: a recycled cgroup still holds the limits
        # of its last run.
        if "memory" in self._dirs:
            memory = functools.partial(self._file, "memory")
            if self._version == 2:
                limit = "max" if quotas.memory_mb is None else str(quotas.memory_mb * MIB)
                write(memory("memory.max"), limit)
                if self._has("memory", "memory.swap.max"):
                    write(memory("memory.swap.max"), "0")
            else:
                limit = "-1" if quotas.memory_mb is None else str(quotas.memory_mb * MIB)
                if self._has("memory", "memory.memsw.limit_in_bytes"):
                    # memsw (memory+swap) may never be below the memory limit: open it first,
                    # then set memory, then close memsw down onto it.
                    write(memory("memory.memsw.limit_in_bytes"), "-1")
                    write(memory("memory.limit_in_bytes"), limit)
                    write(memory("memory.memsw.limit_in_bytes"), limit)
                else:
                    write(memory("memory.limit_in_bytes"), limit)
                    # No swap accounting: without this the run could spill past its limit into swap.
                    with contextlib.suppress(OSError):
                        write(memory("memory.swappiness"), "0")
        if "pids" in self._dirs:
            limit = "max" if quotas.processes is None else str(quotas.processes)
            write(self._file("pids", "pids.max"), limit)

    def _kill_file(self) -> Path | None:
        if self._kill is False:
            directory = self._dirs.get("kill")
            kill = directory / "cgroup.kill" if directory is not None else None
            self._kill = kill if kill is not None and kill.exists() else None
        return self._kill

    @contextlib.contextmanager
    def _frozen(self) -> Iterator[None]:
        """Freeze the run while its members are killed one by one, so none can fork meanwhile."""
        directory = self._dirs.get("freeze")
        if directory is None:
            yield
            return
        v1 = (directory / "freezer.state").exists()
        state, frozen, thawed = (
            ("freezer.state", "FROZEN", "THAWED") if v1 else ("cgroup.freeze", "1", "0")
        )
        write(directory / state, frozen)
        deadline = time.monotonic() + FREEZE_TIMEOUT_S
        # A task in uninterruptible sleep can hold the group in FREEZING; kill it anyway.
        delay = 0.00005
        while time.monotonic() < deadline and not _is_frozen(directory, v1):
            time.sleep(delay)
            delay = min(delay * 1.5, 0.01)
        try:
            yield
        finally:
            # Frozen tasks do not act on SIGKILL until thawed (v1 freezer); thawing lets them die.
            with contextlib.suppress(OSError):
                write(directory / state, thawed)


def join_cgroup(procs_files: tuple[str, ...]) -> None:
    """Move the calling process into a run's cgroup: for a child given only the paths."""
    for procs in procs_files:
        # "0" means the writer itself, whatever pid namespace it is in.
        write(procs, "0")


#: Parents this process has made ready (made, controllers enabled) — a registry, on purpose:
#: checking a parent costs a mkdir and a read per run otherwise.
_READY_PARENTS: set[Path] = set()


def _make_run_dir(plan: Plan, parent: Path, directory: Path) -> None:
    enable = plan.v2_enable if parent == plan.v2_parent else ()
    for _ in range(5):
        try:
            if parent not in _READY_PARENTS:
                ensure_parent(parent, enable)
                _READY_PARENTS.add(parent)
            directory.mkdir()
        except FileNotFoundError:
            # Another runner closing removed the empty parent just now: make it again.
            _READY_PARENTS.discard(parent)
            continue
        return
    raise OSError(errno.ENOENT, "the cgroup parent keeps disappearing", str(parent))


def remove_empty_parents() -> None:
    """Remove the shared parents once no run uses them (a runner closing calls this)."""
    for parent in list(_READY_PARENTS):
        _READY_PARENTS.discard(parent)
        # EBUSY/ENOTEMPTY while another runner's run still uses it: that runner removes it.
        with contextlib.suppress(OSError):
            parent.rmdir()


def _rmdir_retrying(directory: Path) -> None:
    deadline = time.monotonic() + RMDIR_TIMEOUT_S
    delay = 0.0002
    while True:
        try:
            directory.rmdir()
        except FileNotFoundError:
            return
        except OSError as err:
            # EBUSY while killed tasks are still exiting (v2: "populated" not yet 0).
            if err.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                log.warning("could not remove cgroup %s: %s", directory, err)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        else:
            return


# -- killing ----------------------------------------------------------------------------------
def _kill_members(procs_file: Path) -> int:
    """SIGKILL every process listed in ``procs_file``, immune to pid reuse.

    A pid read from the file may be recycled before it is signalled. Each listed process is pinned
    with a pidfd first; the file is read again, and only pids still listed are signalled through
    their pidfd — a pid that was recycled would be listed only if the new process is a member too.
    """
    pinned: dict[int, int] = {}
    try:
        for pid in read_pids(procs_file):
            with contextlib.suppress(ProcessLookupError, OSError):
                pinned[pid] = os.pidfd_open(pid)
        still = set(read_pids(procs_file))
        killed = 0
        for pid, fd in pinned.items():
            if pid in still:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    killed += 1
        return killed
    finally:
        for fd in pinned.values():
            os.close(fd)


def _is_frozen(directory: Path, v1: bool) -> bool:
    if v1:
        return read_text(directory / "freezer.state").strip() == "FROZEN"
    return read_keyed(directory / "cgroup.events").get("frozen", 0) == 1


def _safe_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:64] or "anonymous"


def reap_stale_runs(owner_alive: Callable[[int], bool]) -> int:
    """Kill and remove run cgroups left by a host that died (SIGKILL, power loss).

    Run directories are named ``run-<owner pid>-…`` (see :class:`RunCgroup`); a directory whose
    owner is no longer alive belongs to nobody, and whatever still runs in it is a job nothing
    watches any more. Returns how many run directories were reaped.
    """
    found = plan()
    if found.support.version is None:
        return 0
    names: set[str] = set()
    for parent in set(found.parents.values()):
        with contextlib.suppress(OSError):
            names.update(
                p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("run-")
            )
    reaped = 0
    for name in sorted(names):
        owner = name.split("-")[1] if name.count("-") >= 2 else ""
        if not owner.isdigit() or owner_alive(int(owner)):
            continue
        dirs = {
            role: parent / name
            for role, parent in found.parents.items()
            if (parent / name).is_dir()
        }
        if not dirs:
            continue
        RunCgroup(dirs, found.support.version).close()
        log.warning(
            "killed the leftovers of run cgroup %s (its host, pid %s, is gone)", name, owner
        )
        reaped += 1
    return reaped
