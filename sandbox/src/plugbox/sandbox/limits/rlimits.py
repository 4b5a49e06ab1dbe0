"""Per-process resource limits, applied in the run child before any plugin code is imported.

rlimits are the layer that exists everywhere (macOS included) and costs a few microseconds, but
each one binds a single process, not the run: every forked child starts with a fresh CPU clock and
its own address space. Tree-wide ceilings come from the run's cgroup (:mod:`.cgroups`) and the
parent's watchdog (:mod:`.usage`); the limits here turn the common single-process mistake into a
clear error (``MemoryError``, ``EMFILE``, ``EFBIG``) and put a hard stop under a runaway process
even when no cgroup can be created.

Kernel facts this module relies on (Linux; measured on 6.18):

* ``RLIMIT_CPU`` sends ``SIGXCPU`` at the soft limit and then once a second until the hard limit,
  where it sends ``SIGKILL``. Python leaves ``SIGXCPU`` at its default action (terminate), so an
  ordinary job dies at the soft limit; one that installs a handler still dies one second later.
  The resolution is whole seconds: the watchdog enforces the millisecond quota on the tree.
* Python ignores ``SIGXFSZ`` at start-up, so a write past ``RLIMIT_FSIZE`` fails with
  ``OSError(EFBIG)`` (after a short write up to the limit) instead of killing the process.
  ``subprocess`` restores the default disposition before ``execve`` (``restore_signals=True``), so a
  program started that way is killed by ``SIGXFSZ`` at the limit instead; stopped either way.
* ``RLIMIT_NPROC`` counts every task (process *and* thread) of the real user id in the caller's
  user namespace and the namespaces below it, and the kernel never applies it to uid 0. It is a
  per-run cap when each run has its own user namespace (:mod:`.run_userns`, made before the limit
  is set) or its own unprivileged uid; for root children the pids cgroup is the only process cap.
* A process with ``CAP_SYS_RESOURCE`` may raise its own hard limits again. :func:`apply_rlimits`
  therefore drops that one capability (effective, permitted, inheritable and bounding sets)
  when it holds it, so a root child cannot undo its limits with ``resource.setrlimit``.
"""

from __future__ import annotations

import math
import resource

from plugbox.sandbox._libc import LIBC
from plugbox.sandbox.kernel import capabilities
from plugbox.sandbox.limits.run_userns import enter_own_user_namespace
from plugbox.sdk.permissions import Quotas

__all__ = ["address_space_limit", "apply_rlimits", "mapped_size"]

MIB = 1024 * 1024

AS_MULTIPLE = 4
"""``RLIMIT_AS`` allows this many times ``memory_mb`` of *new* address space ..."""

AS_HEADROOM_MB = 512
"""... plus this much, above what the process had mapped when the limit was applied.

Address space is not memory: glibc reserves 64 MiB per malloc arena, every thread stack is 8 MiB
of mappings, and shared libraries map far more than they touch. Measured with Python 3.11 on
Linux 6.18: a fork of a process that imported the SDK, pydantic and psutil maps 43 MiB, and 20
threads that each allocate push that to 1.16 GiB with glibc's default arena count. Under the limit
for ``memory_mb=64`` only 13 such threads could start; with :data:`MALLOC_ARENAS` arenas, 47. The
limit is therefore loose on purpose: it turns one oversized allocation into ``MemoryError`` at
once, while memory that is really touched is bounded by the cgroup (or the watchdog) at
``memory_mb``.
"""

MALLOC_ARENAS = 2
"""glibc arenas allowed in a child whose address space is limited (glibc's default is 8 per core)."""

_M_ARENA_MAX = -8  # <malloc.h>


def apply_rlimits(
    quotas: Quotas, *, own_task_count: bool = False, mapped_bytes: int | None = None
) -> None:
    """Limit the calling process (the run child) to ``quotas``; unset quotas leave limits alone.

    ``own_task_count`` (a run without a pids cgroup): first enter a user namespace of the run's
    own, so that ``RLIMIT_NPROC`` counts this run's tasks and not every run's (:mod:`.run_userns`;
    it has to happen before the limit is lowered). Needs a single-threaded caller.

    ``mapped_bytes``: the address-space size the ``memory_mb`` limit goes on top of, when the
    caller knows it (the zygote measures itself just before the fork: reading ``/proc`` in the
    child costs it ~0.3 ms of copy-on-write faults); otherwise read here.

    Call it after joining the run's cgroup and before importing plugin code. Core dumps are always
    turned off: a core file would land in the job's working directory — the workspace — with
    whatever secrets the process held. (With a ``|program`` ``core_pattern`` the kernel ignores the
    limit and leaves the decision to that program; systemd-coredump honours it.)

    ``processes`` sets ``RLIMIT_NPROC`` too, which the kernel counts per uid and user namespace
    (per run only with ``own_task_count``) and never applies to root: a root child is only held
    by the pids cgroup.
    """
    if own_task_count:
        enter_own_user_namespace(quotas.processes)
    _set(resource.RLIMIT_CORE, 0)
    if quotas.cpu_ms is not None:
        seconds = math.ceil(quotas.cpu_ms / 1000)
        # soft: SIGXCPU (catchable, so a job can log and exit); hard one second later: SIGKILL.
        _set(resource.RLIMIT_CPU, seconds, seconds + 1)
    if quotas.open_files is not None:
        _set(resource.RLIMIT_NOFILE, quotas.open_files)
    if quotas.file_size_mb is not None:
        _set(resource.RLIMIT_FSIZE, quotas.file_size_mb * MIB)
    if quotas.processes is not None:
        _set(resource.RLIMIT_NPROC, quotas.processes)
    if quotas.memory_mb is not None:
        _limit_malloc_arenas()
        _set(resource.RLIMIT_AS, address_space_limit(quotas.memory_mb, mapped_bytes))
    # So the limits just set cannot be raised again by this process tree.
    capabilities.drop([capabilities.CAP_SYS_RESOURCE])


def address_space_limit(memory_mb: int, mapped_bytes: int | None = None) -> int:
    """The ``RLIMIT_AS`` in bytes for a ``memory_mb`` quota, on top of what is already mapped.

    Relative to the current mapping size because a child forked from a warm zygote starts with
    everything the zygote imported already mapped (tens of MiB for the SDK alone; hundreds once
    something like numpy is in): a fixed limit would be generous in one zygote and fatal in another.
    """
    if mapped_bytes is None:
        mapped_bytes = mapped_size()
    return mapped_bytes + (AS_MULTIPLE * memory_mb + AS_HEADROOM_MB) * MIB


def _set(which: int, soft: int, hard: int | None = None) -> None:
    """Lower a limit to (``soft``, ``hard``), never raising one that is already tighter.

    Raising fails for non-root, and for root it would loosen whatever the host itself runs under.
    """
    hard = soft if hard is None else hard
    current_soft, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    if current_soft != resource.RLIM_INFINITY:
        soft = min(soft, current_soft)
    resource.setrlimit(which, (min(soft, hard), hard))


def mapped_size() -> int:
    """Current address-space size (``VmSize``), or 0 where ``/proc`` is unavailable."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _limit_malloc_arenas() -> None:
    """Cap glibc's per-thread malloc arenas so threads do not eat the address-space limit.

    Each arena is a 64 MiB reservation that counts against ``RLIMIT_AS`` although almost none of it
    is touched; with the default cap (8 per core) a thread pool alone can exhaust the limit and
    make ``threading.Thread.start`` fail. Best-effort: musl and macOS have no such knob.
    """
    mallopt = getattr(LIBC, "mallopt", None)  # typed in the zygote (_libc)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
