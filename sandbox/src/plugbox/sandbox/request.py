"""What the runner needs to run one job: which handler, with which permissions, where, as which run.

:func:`request_for_job` is the one way a declared job becomes a :class:`RunRequest`. The host
(``plugbox jobs run``, the scheduler) and the authors' test harness both call it, so a job tested
with the harness runs with exactly the permissions, quotas and context the host will give it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr

from plugbox.sdk import Manifest, NotConfiguredError, Problem, Trigger
from plugbox.sdk.job_config import config_problems, effective_config
from plugbox.sdk.permissions import Permissions, Quotas
from plugbox.sdk.permissions.bindings import resolve_bindings

#: Names where an operator sets something for a job: ``locate("config", "api_url")``.
Locate = Callable[[str, str], str]


def _harness_location(kind: str, key: str) -> str:
    return f"{kind}.{key}" if key else kind


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
    lease_epoch: int = Field(0, ge=0, description="the host's lease on the run (fencing token)")


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
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        repr=False,
        description="the operator's values of the secrets the job declares; sent with the go,"
        " never in a spawn spec, and redacted from the outcome",
    )
    bindings: dict[str, str] = Field(
        default_factory=dict,
        description="each permission rule bound to config, and the literal rule it resolved to",
    )
    python_path: tuple[str, ...] = Field(
        (), description="extra import directories for the job's code (readable, never writable)"
    )
    learn: bool = Field(
        False,
        description="learn mode: every well-formed call proceeds and is recorded with the verdict "
        "the declared permissions would give; the workspace is writable and every variable in "
        "`environment` is visible (for the test harness, never the host)",
    )

    def secret_values(self) -> dict[str, str]:
        """The secrets in clear: for the child's go message and for redaction, nothing else."""
        return {name: value.get_secret_value() for name, value in self.secrets.items()}

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
    It names no run either: the same job's spawns send the same text, which the zygote validates
    once and then finds in its cache.
    """

    request: RunRequest
    quotas: Quotas
    host_path: str
    landlock_read_exec: tuple[str, ...] = ()
    landlock_read_only: tuple[str, ...] = ()
    landlock_read_write: tuple[str, ...] = ()
    allow_exec: bool = False
    #: (uid, gid) the child switches to after Landlock (a root host's run identity), or None.
    run_as: tuple[int, int] | None = None


def request_for_job(
    manifest: Manifest,
    job_id: str,
    *,
    workspace: str,
    run_id: str,
    scheduled_at: datetime,
    run_count: int = 1,
    attempt: int = 1,
    trigger: str = "manual",
    config: Mapping[str, JsonValue] | None = None,
    permissions: Permissions | None = None,
    grants: Sequence[Permissions] = (),
    environment: Mapping[str, str] | None = None,
    python_path: Sequence[str] = (),
    quotas: Quotas | None = None,
    secrets: Mapping[str, str] | None = None,
    locate: Locate | None = None,
    lease_epoch: int = 0,
) -> RunRequest:
    """The run of job ``job_id`` of ``manifest``, built as the host builds every run.

    The job runs with the plugin-level permissions combined with its own (or ``permissions``,
    which replaces that declared set), its ``timeout`` folded into the quotas, its ``config``
    defaults overlaid with ``config``, and the plugin's id and version in its context.
    ``trigger`` is one of schedule | manual | startup | retry (checked by :class:`RunContext`).
    ``quotas`` is the operator's per-job override: each field it sets replaces the declared
    value (the job's ``timeout`` included); grants can then only lower them.

    ``config`` and ``secrets`` are what the operator set (never the declared defaults): config
    is checked against the job's declaration, permission rules bound to config keys are resolved
    from it, and the job's declared secrets are taken from ``secrets``. A job that cannot run as
    configured raises :class:`~plugbox.sdk.NotConfiguredError`, each problem located by ``locate``
    (``plugins.weather.config.api_url`` on the host).
    """
    spec = manifest.job(job_id)
    locate = locate or _harness_location
    operator = dict(config or {})
    problems = config_problems(spec, operator, lambda key: locate("config", key))
    declared = run_permissions(manifest, job_id, permissions=permissions, quotas=quotas)
    resolved = resolve_bindings(declared, operator)
    problems += [
        Problem(
            locate("config", key),
            f"not set; the job's permissions bind to it, so the job runs only once you set it"
            f" (the declared default {spec.config[key]!r} is never used for a binding)"
            if key in spec.config
            else "not set; the job's permissions bind to it, so the job runs only once you set it",
        )
        for key in resolved.missing
    ]
    problems += [
        Problem(locate("config", key), f"cannot be bound to a permission rule: {why}")
        for key, why in resolved.invalid.items()
    ]
    provided = dict(secrets or {})
    names = manifest.secret_names(job_id)
    problems += [
        Problem(locate("secrets", name), "not provided; the job declares it needs this secret")
        for name in names
        if not provided.get(name)
    ]
    if problems:
        raise NotConfiguredError(f"{manifest.id}:{job_id}", problems)
    return RunRequest(
        handler=spec.handler,
        workspace=workspace,
        context=RunContext(
            job_id=spec.id,
            plugin_id=manifest.id,
            plugin_version=manifest.version,
            run_id=run_id,
            scheduled_at=scheduled_at,
            run_count=run_count,
            attempt=attempt,
            trigger=trigger,
            config=effective_config(spec, operator),
            lease_epoch=lease_epoch,
        ),
        permissions=resolved.permissions,
        grants=tuple(grants),
        environment=dict(environment or {}),
        secrets={name: SecretStr(provided[name]) for name in names},
        bindings=dict(resolved.values),
        python_path=tuple(python_path),
    )


def run_permissions(
    manifest: Manifest,
    job_id: str,
    *,
    permissions: Permissions | None = None,
    quotas: Quotas | None = None,
) -> Permissions:
    """The permissions a run of ``job_id`` declares: plugin-level and job-level combined (or
    ``permissions``), the job's ``timeout`` folded in, the operator's ``quotas`` override applied.

    What ``plugbox plugins inspect`` shows as declared is exactly what a run gets.
    """
    declared = manifest.declared_permissions(job_id) if permissions is None else permissions
    declared = with_timeout(declared, manifest.job(job_id).timeout_ms)
    if quotas is not None:
        declared = declared.model_copy(update={"quotas": declared.quotas.overridden_by(quotas)})
    return declared


def with_timeout(permissions: Permissions, timeout_ms: int | None) -> Permissions:
    """``permissions`` with a job's ``timeout`` folded into ``quotas.timeout_ms``.

    ``@job(timeout=...)`` and ``quotas.timeout_ms`` are both wall-clock limits the author
    declared; the run is killed at whichever comes first, so the smaller one is the quota.
    """
    if timeout_ms is None:
        return permissions
    current = permissions.quotas.timeout_ms
    limit = timeout_ms if current is None else min(current, timeout_ms)
    if limit == current:
        return permissions
    quotas = permissions.quotas.model_copy(update={"timeout_ms": limit})
    return permissions.model_copy(update={"quotas": quotas})
