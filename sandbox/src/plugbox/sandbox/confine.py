"""The confinement of one run: prepared in the zygote, applied in the forked child.

Preparing (building the Landlock ruleset, compiling the seccomp filter) costs far more than
applying, so it happens before ``fork`` and is cached per distinct path set; the child only calls
``restrict_self`` and ``seccomp_load``. Order in the child: rlimits, (own network namespace),
Landlock, seccomp last, and nothing of the plugin is imported before. Where seccomp works, the
empty network namespace is entered once by the zygote and every child is born in it
(:attr:`MachineLayers.shared_netns`).

A layer this machine lacks is skipped and reported in the run's :class:`Enforcement`, never
silently assumed.
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from plugbox.sandbox.kernel import capabilities, landlock, namespaces, seccomp
from plugbox.sandbox.limits.rlimits import apply_rlimits
from plugbox.sandbox.request import SpawnSpec
from plugbox.sandbox.run_identity import RunIdentity


@dataclass(frozen=True, slots=True)
class MachineLayers:
    """What this machine can do, probed once per zygote."""

    landlock_abi: int
    netns: bool
    seccomp: bool
    cgroups: bool

    @property
    def shared_netns(self) -> bool:
        """Whether children can share the zygote's empty namespace instead of making their own.

        A root job can bring ``lo`` up in a namespace (``SIOCSIFFLAGS`` works through an
        ``AF_UNIX`` socket), so sharing is only safe where seccomp refuses every non-unix socket
        and nothing could use ``lo`` anyway; without seccomp each child gets its own namespace.
        """
        return self.netns and self.seccomp

    @classmethod
    def probe(cls, *, cgroups: bool) -> MachineLayers:
        return cls(
            landlock_abi=landlock.abi_version(),
            netns=namespaces.network_namespace_available(),
            seccomp=seccomp.seccomp_available(),
            cgroups=cgroups,
        )


@lru_cache(maxsize=64)
def _ruleset(
    read_exec: tuple[str, ...], read_only: tuple[str, ...], read_write: tuple[str, ...]
) -> landlock.Ruleset:
    return landlock.Ruleset.build(
        landlock.LandlockPolicy(read_exec=read_exec, read_only=read_only, read_write=read_write)
    )


@lru_cache(maxsize=2)
def _filter(allow_exec: bool) -> seccomp.Filter:
    return seccomp.Filter.build(seccomp.SeccompPolicy(allow_exec=allow_exec))


@dataclass(slots=True)
class Confinement:
    """Everything a child needs to confine itself, ready before the fork."""

    spec: SpawnSpec
    machine: MachineLayers
    ruleset: landlock.Ruleset | None = None
    filter: seccomp.Filter | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def prepare(cls, spec: SpawnSpec, machine: MachineLayers) -> Confinement:
        if spec.run_as is not None:
            # The parent chose the run uid from the mount view the zygote reported; here, in
            # that view, is where the child will look. A difference fails the spawn, with why,
            # rather than a job that cannot import its own code.
            paths = (*spec.landlock_read_only, spec.request.workspace)
            blocked = RunIdentity(*spec.run_as).unreachable(paths)
            if blocked is not None:
                raise PermissionError(
                    errno.EACCES,
                    f"the run uid cannot reach what this job needs in the sandbox's view of the "
                    f"filesystem: {blocked} (changed since the host started?); restart the host",
                )
        confinement = cls(spec, machine)
        if machine.landlock_abi:
            try:
                confinement.ruleset = _ruleset(
                    spec.landlock_read_exec, spec.landlock_read_only, spec.landlock_read_write
                )
            except OSError as err:
                # Fail closed: on a machine with Landlock, a run whose rules the kernel cannot
                # take never runs without them (the spawn fails and the run records why).
                raise OSError(
                    err.errno, f"the Landlock rules for this job could not be built: {err}"
                ) from err
        if machine.seccomp:
            confinement.filter = _filter(spec.allow_exec)
        return confinement

    def inherited_fds(self) -> tuple[int, ...]:
        return (self.ruleset.fd,) if self.ruleset is not None else ()

    def apply_in_child(self, mapped_bytes: int | None = None) -> None:
        """Confine the calling (child) process. Raises if a layer we rely on fails to apply.

        ``mapped_bytes``: the zygote's address-space size at the fork (for ``RLIMIT_AS``).
        """
        run_as = self.spec.run_as
        if run_as is not None:
            # A root host's job never runs as uid 0 where the paths it needs allow (run_identity).
            RunIdentity(*run_as).become()
        # The run uid is shared by every run: its own user namespace keeps RLIMIT_NPROC per run.
        apply_rlimits(
            self.spec.quotas,
            own_task_count=not self.machine.cgroups or run_as is not None,
            mapped_bytes=mapped_bytes,
        )
        if self.machine.netns and not self.machine.shared_netns:
            namespaces.unshare_network()
        if self.ruleset is not None:
            self.ruleset.restrict_self()
        # Job code never holds a capability: every set, the bounding set included; raises if
        # one survives, so no job runs with one (issue 9, class C).
        capabilities.drop_all()
        if self.filter is not None:
            self.filter.load()
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
