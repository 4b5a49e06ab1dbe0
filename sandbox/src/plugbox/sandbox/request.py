"""What the runner needs to run one job: which handler, with which permissions, where, as which run."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from plugbox.sdk import Trigger
from plugbox.sdk.permissions import Permissions, Quotas


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunContext(_Frozen):
    """The facts about a run that ``JobContext`` exposes to the handler."""

    job_id: str
    plugin_id: str
    plugin_version: str
    run_id: str
    scheduled_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    run_count: int = 1
    attempt: int = 1
    trigger: Trigger = "manual"
    config: dict[str, JsonValue] = Field(default_factory=dict)


class RunRequest(_Frozen):
    """One run: the handler's import reference, the permissions, the workspace and the context.

    ``permissions`` are what the job declares; ``grants`` are the operator's narrowing layers.
    ``environment`` is the source the allowed variables are taken from (the host's environment);
    nothing outside ``env.allow`` ever reaches the job.
    """

    handler: str
    workspace: str
    context: RunContext
    permissions: Permissions = Permissions()
    grants: tuple[Permissions, ...] = ()
    environment: dict[str, str] = Field(default_factory=dict)
    python_path: tuple[str, ...] = Field(
        (), description="extra import directories for the job's code (readable, never writable)"
    )
    learn: bool = Field(
        False,
        description="learn mode: every well-formed call proceeds and is recorded with the verdict "
        "the declared permissions would give; the workspace is writable and every variable in "
        "`environment` is visible (for the test harness, never the host)",
    )

    def quotas(self, defaults: Quotas) -> Quotas:
        """Effective quotas: declared over defaults, then the smallest value any grant sets."""
        merged = {**defaults.model_dump(), **self.permissions.quotas.model_dump(exclude_none=True)}
        for grant in self.grants:
            for key, value in grant.quotas.model_dump(exclude_none=True).items():
                merged[key] = value if merged.get(key) is None else min(merged[key], value)
        return Quotas(**merged)


#: Quotas in force when neither the job nor the operator sets one.
DEFAULT_QUOTAS = Quotas(
    timeout_ms=10 * 60_000,
    memory_mb=1024,
    cpu_ms=10 * 60_000,
    output_bytes=1024 * 1024,
    open_files=256,
    processes=64,
    file_size_mb=1024,
)


class SpawnSpec(_Frozen):
    """What the zygote needs to fork and confine one run child — never the environment values.

    Secrets (the allowed environment) go from the parent straight to the child over the run's
    control channel after the fork, so no zygote memory that later children inherit ever held them.
    """

    run_id: str
    request: RunRequest
    quotas: Quotas
    host_path: str
    landlock_read_exec: tuple[str, ...] = ()
    landlock_read_only: tuple[str, ...] = ()
    landlock_read_write: tuple[str, ...] = ()
    allow_exec: bool = False
