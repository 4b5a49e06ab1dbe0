"""What the zygote needs to fork and confine a run child: the spawn spec, and what the kernel grants.

A spec depends only on the job (permissions, grants, workspace, code paths, quotas), never on
the run: the run's facts and secrets go to the child with its go. So every spawn of a job sends
the same text, which the parent builds once and the zygote validates once.

:func:`kernel_grants` is the one answer to "what does Landlock really let this job do": the spec
is built from it, the run record's ``enforcement.kernel`` shows it and ``plugbox plugins
inspect`` prints it, so the three can never disagree.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass

from plugbox.sandbox import fs_roots
from plugbox.sandbox.exec_files import exec_files, loaders
from plugbox.sandbox.kernel.landlock import default_system_paths
from plugbox.sandbox.outcome import EVERY_SYSTEM_PATH, Enforcement, KernelGrants
from plugbox.sandbox.proxies.shell import search_path
from plugbox.sandbox.request import RunContext, RunRequest, SpawnSpec
from plugbox.sandbox.run_identity import RunIdentity
from plugbox.sandbox.workspace import WriteRootRefused
from plugbox.sdk.permissions import Permissions, Quotas
from plugbox.sdk.permissions.commands import parse_command_pattern
from plugbox.sdk.permissions.learn import learning_permissions

#: The context a spec carries: a placeholder, the real one arrives with the go.
PLACEHOLDER_CONTEXT = RunContext(job_id="-", plugin_id="-", plugin_version="-", run_id="-")


@dataclass(frozen=True, slots=True)
class _Plan:
    """The kernel's part of one job: workspace roots (relative), files it may execute, notes."""

    read_roots: tuple[str, ...]
    write_roots: tuple[str, ...]
    executable: tuple[str, ...] | None  # None: every system path (nothing to narrow to)
    system: tuple[str, ...]
    notes: tuple[str, ...]
    run_as: tuple[int, int] | None = None

    @property
    def grants(self) -> KernelGrants:
        return KernelGrants(
            read=tuple(r or "." for r in self.read_roots),
            write=self.write_roots,
            execute=EVERY_SYSTEM_PATH if self.executable is None else self.executable,
        )


def _host_path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


def spawn_spec(
    request: RunRequest,
    quotas: Quotas,
    system_paths: tuple[str, ...],
    identity: RunIdentity | None = None,
) -> tuple[SpawnSpec, tuple[str, ...]]:
    """The spawn spec of ``request`` and its workspace-relative write roots.

    ``system_paths`` are what every child may read (:func:`code_paths`); they keep ``EXECUTE``
    only where nothing narrower can be said (a learn run).
    """
    plan = _plan_for(request, system_paths, identity)
    workspace_read = fs_roots.absolute(request.workspace, plan.read_roots)
    if plan.executable is None:
        read_exec, read_only = plan.system, workspace_read
    else:
        # The host's paths, resolved here (the host owns them) so that the zygote can open
        # every read-only path without following a link, as it must for the workspace's.
        read_exec = plan.executable
        real = {os.path.realpath(p) for p in plan.system}
        read_only = outside_workspace(tuple(sorted(real)), request.workspace) + workspace_read
    capabilities = _capabilities(request)
    spec = SpawnSpec(
        # The run's facts and secrets travel with the go, never in the spec: so a job's
        # spawns all send the same text, which the zygote validates once (see zygote.py).
        request=request.model_copy(
            update={"environment": {}, "secrets": {}, "context": PLACEHOLDER_CONTEXT}
        ),
        quotas=quotas,
        host_path=_host_path(),
        landlock_read_exec=read_exec,
        landlock_read_only=read_only,
        landlock_read_write=fs_roots.absolute(request.workspace, plan.write_roots),
        allow_exec="shell" in capabilities,
        run_as=plan.run_as,
    )
    return spec, plan.write_roots


def kernel_grants(request: RunRequest, system_paths: tuple[str, ...]) -> KernelGrants:
    """What Landlock lets ``request``'s job read, write and execute (for ``plugins inspect``)."""
    return _plan_for(request, system_paths, None).grants


def with_kernel_grants(
    enforcement: Enforcement,
    request: RunRequest,
    system_paths: tuple[str, ...],
    identity: RunIdentity | None = None,
) -> Enforcement:
    """``enforcement`` of a run of ``request`` with its kernel grants and what they mean."""
    return _recorded(enforcement, _plan_for(request, system_paths, identity))


@functools.lru_cache(maxsize=256)
def _recorded(enforcement: Enforcement, plan: _Plan) -> Enforcement:
    # Per run this is a cache hit: a few microseconds, not a model copy.
    return enforcement.with_kernel(plan.grants, plan.notes)


def _capabilities(request: RunRequest) -> set[str]:
    capabilities = set(request.permissions.capabilities) | ({"shell"} if request.learn else set())
    for grant in () if request.learn else request.grants:
        capabilities &= set(grant.capabilities)
    return capabilities


def _plan_for(
    request: RunRequest, system_paths: tuple[str, ...], identity: RunIdentity | None
) -> _Plan:
    return _plan(
        request.permissions,
        () if request.learn else request.grants,
        request.learn,
        request.workspace,
        _host_path(),
        system_paths + request.python_path,
        identity,
    )


@functools.lru_cache(maxsize=256)
def _plan(
    permissions: Permissions,
    grants: tuple[Permissions, ...],
    learn: bool,
    workspace: str,
    host_path: str,
    code: tuple[str, ...],
    identity: RunIdentity | None = None,
) -> _Plan:
    """Cached per job: a run of a job seen before pays a dictionary lookup, not path work."""
    system = outside_workspace(code, workspace)
    notes: list[str] = []
    if learn:
        # A learn run lets calls the declared rules would refuse happen, so they can be
        # recorded: the workspace readable, each existing top-level folder writable (never the
        # root itself), and execve of every system program (RunRequest.learn).
        declared = learning_permissions(permissions, _top_level_folders(workspace))
        notes.append(
            "learn mode: the kernel lets this run read the whole workspace, write each of its "
            "top-level folders (never the root itself) and execute every system program"
        )
    else:
        declared = permissions
    read_roots, write_roots = fs_roots.workspace_roots(declared, grants)
    if "" in read_roots and not learn:
        notes.append(
            "the kernel lets this job read the whole workspace: a read pattern without a '/' "
            "matches at any depth, so Landlock grants the root; runtime.fs still refuses what "
            "the rules do not allow, code that bypasses it does not"
        )
    partial = fs_roots.partial_write_roots(declared, write_roots) if not learn else ()
    if partial:
        folders = ", ".join(f"{p}/" for p in partial)
        notes.append(
            f"the kernel lets this job write anything in {folders}: a readWrite pattern there "
            "names less than the folder, and Landlock grants creating files per folder; "
            "runtime.fs still refuses what the rules do not allow, code that bypasses it does not"
        )
    capabilities = set(declared.capabilities)
    for grant in grants:
        capabilities &= set(grant.capabilities)
    executable: tuple[str, ...] | None = ()
    if learn:
        executable = None
    elif "shell" in capabilities:
        # A program (or an interpreter of it) whose real path is in the workspace — a host
        # PATH entry that links there — is a file a job can write: never executable.
        executable = exec_files(
            _programs(declared, grants),
            search_path(host_path, workspace),
            never_in=os.path.realpath(workspace),
        )
        if loaders(executable):
            notes.append(
                "the kernel lets this job execute only the files in kernel.execute; the dynamic "
                f"loader among them ({', '.join(loaders(executable))}) can also map another "
                "readable program when run directly, and that code runs with exactly this job's "
                "rights (no more than ctypes gives it)"
            )
    run_as = None
    # Not for a learn run (harness only): its write roots are every top-level folder of the
    # author's workspace, which must never be handed over to another uid.
    if identity is not None and not learn:
        blocked = identity.unreachable(
            (*system, workspace, *fs_roots.absolute(workspace, read_roots))
        )
        if blocked is None:
            run_as = (identity.uid, identity.gid)
            notes.append(f"the job ran as uid {identity.uid}, not as the host's uid 0")
        else:
            notes.append(
                f"the job ran as uid 0 (without any capability), not as the run uid "
                f"{identity.uid}: {blocked}; let other users read it (chmod o+rx) or install "
                "Python and the plugins where they can"
            )
    return _Plan(read_roots, write_roots, executable, system, tuple(notes), run_as)


def _programs(declared: Permissions, grants: tuple[Permissions, ...]) -> set[str]:
    """The programs some allow rule names, in the declaration and in every grant."""

    def named(permissions: Permissions) -> set[str]:
        return {parse_command_pattern(p).tokens[0] for p in permissions.shell.allow}

    programs = named(declared)
    for grant in grants:
        programs &= named(grant)
    return programs


def _top_level_folders(workspace: str) -> tuple[str, ...]:
    with contextlib.suppress(OSError), os.scandir(workspace) as entries:
        return tuple(e.name for e in entries if e.is_dir(follow_symlinks=False))
    return ()


def workspace_problem(workspace: str, err: OSError) -> str:
    """Why the run's workspace cannot be prepared, said so that the operator can fix it."""
    if isinstance(err, WriteRootRefused):
        return err.strerror or str(err)
    if not os.path.isdir(workspace):
        what = "is not a directory" if os.path.exists(workspace) else "does not exist"
        return (
            f"the workspace {workspace} {what}; jobs run with the workspace as their cwd, so "
            f"create it (mkdir -p {workspace}) or point the host at an existing directory"
        )
    return f"the workspace {workspace} could not be prepared: {err.strerror or err}"


def outside_workspace(paths: tuple[str, ...], workspace: str) -> tuple[str, ...]:
    """Drop code paths that contain the workspace: granting them would grant all of it."""
    root = os.path.realpath(workspace)
    return tuple(p for p in paths if not (root == p or root.startswith(p.rstrip("/") + "/")))


def code_paths() -> tuple[str, ...]:
    """Readable + executable paths a child needs: system libraries, Python, and installed code."""
    paths = set(default_system_paths())
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        paths.add(prefix)
    for entry in sys.path:
        if entry and os.path.isabs(entry) and os.path.exists(entry):
            paths.add(entry)
    return tuple(sorted(paths))


__all__ = [
    "code_paths",
    "kernel_grants",
    "outside_workspace",
    "spawn_spec",
    "with_kernel_grants",
    "workspace_problem",
]
