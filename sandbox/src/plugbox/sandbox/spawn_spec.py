"""What the zygote needs to fork and confine a run child: the spawn spec, and its paths.

A spec depends only on the job (permissions, grants, workspace, code paths, quotas), never on
the run: the run's facts and secrets go to the child with its go. So every spawn of a job sends
the same text, which the parent builds once and the zygote validates once.
"""

from __future__ import annotations

import os
import sys

from plugbox.sandbox import fs_roots
from plugbox.sandbox.kernel.landlock import default_system_paths
from plugbox.sandbox.request import RunContext, RunRequest, SpawnSpec
from plugbox.sdk.permissions import Quotas
from plugbox.sdk.permissions.learn import learning_permissions

#: The context a spec carries: a placeholder, the real one arrives with the go.
PLACEHOLDER_CONTEXT = RunContext(job_id="-", plugin_id="-", plugin_version="-", run_id="-")


def spawn_spec(
    request: RunRequest, quotas: Quotas, system_paths: tuple[str, ...]
) -> tuple[SpawnSpec, tuple[str, ...]]:
    """The spawn spec of ``request`` and its workspace-relative write roots.

    ``system_paths`` are what every child may read and execute (:func:`code_paths`).
    """
    # A learn run's kernel layers open the whole workspace and execve, so that calls the
    # declared rules would refuse can happen and be recorded (RunRequest.learn).
    declared = learning_permissions(request.permissions) if request.learn else request.permissions
    grants = () if request.learn else request.grants
    read_roots, write_roots = fs_roots.workspace_roots(declared, grants)
    capabilities = set(declared.capabilities)
    for grant in grants:
        capabilities &= set(grant.capabilities)
    spec = SpawnSpec(
        # The run's facts and secrets travel with the go, never in the spec: so a job's
        # spawns all send the same text, which the zygote validates once (see zygote.py).
        request=request.model_copy(update={"environment": {}, "context": PLACEHOLDER_CONTEXT}),
        quotas=quotas,
        host_path=os.environ.get("PATH", "/usr/bin:/bin"),
        landlock_read_exec=outside_workspace(system_paths + request.python_path, request.workspace),
        landlock_read_only=fs_roots.absolute(request.workspace, read_roots),
        landlock_read_write=fs_roots.absolute(request.workspace, write_roots),
        allow_exec="shell" in capabilities,
    )
    return spec, write_roots


def workspace_problem(workspace: str, err: OSError) -> str:
    """Why the run's workspace cannot be prepared, said so that the operator can fix it."""
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
