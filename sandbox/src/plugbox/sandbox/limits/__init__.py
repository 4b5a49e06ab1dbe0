"""Resource limits of a run: what one process may use, what the whole run may use, and its end.

* :func:`apply_rlimits` — per-process limits, applied in the child (:mod:`.rlimits`);
* :class:`RunCgroup` / :func:`cgroup_support` — the run's cgroup: tree-wide memory and process
  ceilings, exact CPU and peak memory, a kill nothing escapes (:mod:`.cgroups`);
* :func:`become_subreaper` / :func:`kill_tree` / :func:`kill_orphans` — ending a run without a
  cgroup, and the second line of defence with one (:mod:`.reaper`);
* :class:`TreeSampler` / :class:`TreeUsage` — tree-wide measurement for the watchdog (:mod:`.usage`).

Why the layers are split this way: docs/adr/0005-resource-limits.md.
"""

from plugbox.sandbox.limits.cgroups import CgroupSupport, RunCgroup, cgroup_support, join_cgroup
from plugbox.sandbox.limits.reaper import become_subreaper, is_subreaper, kill_orphans, kill_tree
from plugbox.sandbox.limits.rlimits import address_space_limit, apply_rlimits
from plugbox.sandbox.limits.usage import TreeSampler, TreeUsage

__all__ = [
    "CgroupSupport",
    "RunCgroup",
    "TreeSampler",
    "TreeUsage",
    "address_space_limit",
    "apply_rlimits",
    "become_subreaper",
    "cgroup_support",
    "is_subreaper",
    "join_cgroup",
    "kill_orphans",
    "kill_tree",
]
