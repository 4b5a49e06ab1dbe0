"""A user namespace per run child, so that ``RLIMIT_NPROC`` counts the run's own tasks only.

Without a pids cgroup, ``processes`` is enforced by ``RLIMIT_NPROC``, and the kernel counts that
limit per uid *per user namespace* (``ucounts``, Linux 5.14+). On an unprivileged host every run
child is born in the zygote's one user namespace with the host's uid, so all runs share one count:
a run holding 61 threads under ``processes=64`` left the next run (also ``processes=64``) unable
to start a thread. Each run child therefore enters a user namespace of its own, mapping only its
own uid and gid, while it is still single-threaded and before any limit is lowered.

Why that gives each run its own allowance — ``is_rlimit_overlimit()`` in kernel/ucount.c walks
from the task's namespace up to the initial one and fails a fork when, at any level, the tasks of
the uid in that namespace *and its descendants* exceed that level's limit:

* at the run's own level the count holds only the run's tasks, against the run's
  ``RLIMIT_NPROC`` (its ``processes`` quota) — the cap that used to be shared;
* at the zygote's level the count holds every run, against the ``RLIMIT_NPROC`` the run child had
  *when it created its namespace* (``ucount_max`` is copied at creation). That is why this must
  run before :func:`~plugbox.sandbox.limits.rlimits.apply_rlimits`: created after, the run's quota
  would become the ceiling of every run's tasks together, which is the bug again;
* at the initial level, the host user's own limit, as before.

Cost: one ``unshare(CLONE_NEWUSER)`` and three small ``/proc/self`` writes in the warm child,
before the run's go: 0.21 ms in the child, 0.24 ms more per fork-to-reap cycle (p50 of 300, as
the unprivileged user on the 2-core development machine under load). The run stays in the
zygote's network namespace: that namespace belongs to the zygote's user namespace, so the
capabilities the child holds in its own (dropped right after anyway) give it no power over it.
Seccomp, applied last, refuses ``unshare`` and namespace flags to ``clone``, so the job cannot
leave this namespace for another with a fresh count.

Only where it helps: a run with a ``processes`` quota and no pids cgroup (the caller decides
that), not as root (the kernel never applies ``RLIMIT_NPROC`` to root of the initial namespace).
"""

from __future__ import annotations

import os

from plugbox.sandbox._libc import LIBC
from plugbox.sandbox.kernel import capabilities
from plugbox.sandbox.kernel.namespaces import CLONE_NEWUSER, _map_own_ids

__all__ = ["enter_own_user_namespace"]


def enter_own_user_namespace(processes: int | None) -> bool:
    """In a run child without a pids cgroup, before its rlimits: its own ``RLIMIT_NPROC`` count.

    Returns whether a namespace was entered. Where the kernel refuses (user namespaces off, or
    ``user.max_user_namespaces`` reached) the run keeps the shared count it always had: the
    ``processes`` quota is ``best-effort`` on this path either way, and the run still works.
    """
    if processes is None or os.geteuid() == 0 or LIBC is None:
        return False  # no limit to keep apart, or one the kernel does not apply
    uid, gid = os.geteuid(), os.getegid()
    if LIBC.unshare(CLONE_NEWUSER) != 0:
        return False
    capabilities.bounding_refilled()  # a new namespace comes with a full bounding set
    # Unmapped, the run's uid would read as the overflow uid and its files' owners too.
    _map_own_ids(uid, gid)
    return True
