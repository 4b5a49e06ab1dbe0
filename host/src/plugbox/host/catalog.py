"""What an operator reads about plugins and jobs: pydantic views built from the running host.

These models are the HTTP API's responses for ``/plugins`` and ``/jobs`` (run history is the
store's own :class:`~plugbox.host.store.RunRecord`). Everything here is read-only: it combines
manifests, the operator's configuration, the store's pause state and statistics, and what the
kernel grants, and changes nothing.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from plugbox.host.discovery import LoadedPlugin
from plugbox.host.services import Host
from plugbox.host.store import JobStats, JobTally, PauseState, RunRecord
from plugbox.sandbox import fs_roots
from plugbox.sandbox.doctor import diagnose
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunContext, RunRequest, run_permissions
from plugbox.sandbox.spawn_spec import code_paths, kernel_grants
from plugbox.sdk import JobSpec, Schedule, ScheduleError, parse_schedule
from plugbox.sdk.firing import backoff_ms
from plugbox.sdk.permissions import Permissions

JobState = Literal["enabled", "paused", "disabled"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PluginProblemView(_View):
    """A plugin that was skipped at discovery, and why."""

    entry_point: str
    distribution: str
    kind: str
    reason: str


class PluginSummary(_View):
    id: str
    version: str
    name: str
    description: str
    distribution: str
    enabled: bool = Field(description="false when plugbox.toml disables it")
    jobs: tuple[str, ...] = Field(description="job ids, the JOB part of PLUGIN:JOB")


class PluginList(_View):
    plugins: tuple[PluginSummary, ...]
    problems: tuple[PluginProblemView, ...] = Field(description="plugins that failed to load")


class JobPermissions(_View):
    """One job's permissions: as declared, as the operator narrowed them, as the kernel enforces."""

    declared: dict[str, JsonValue]
    granted: tuple[dict[str, JsonValue], ...] = Field(description="the operator's grants")
    effective: str = Field(description="how declared and granted combine")
    quotas_in_force: dict[str, JsonValue]
    kernel_read_roots: tuple[str, ...]
    kernel_write_roots: tuple[str, ...]
    kernel: dict[str, JsonValue] = Field(description="what Landlock grants a run of this job")


class PluginDetail(PluginSummary):
    permissions: dict[str, JsonValue] = Field(description="declared at plugin level")
    job_permissions: dict[str, JobPermissions]
    enforcement: dict[str, str] = Field(
        description="per capability, what protects it on this machine: kernel, best-effort"
        " or advisory (as `plugbox doctor` says)"
    )


class JobSummary(_View):
    id: str = Field(description="PLUGIN:JOB")
    plugin: str
    job: str
    description: str
    tags: tuple[str, ...]
    state: JobState
    enabled: bool
    paused: bool
    schedule: str | None = Field(description="cron expression in force; null: manual only")
    timezone: str
    schedule_words: str | None = Field(description="the schedule for a person, in its zone")
    schedule_error: str | None = Field(description="why the schedule cannot be used")
    next_fire: datetime | None
    last_run: RunRecord | None
    success_rate: float | None = Field(description="see JobStats.success_rate")


class JobList(_View):
    jobs: tuple[JobSummary, ...]
    next_cursor: str | None = Field(
        default=None,
        description="pass as ?cursor= for the next page; null on the last page",
    )


class JobDetail(JobSummary):
    next_fires: tuple[datetime, ...] = Field(description="the next 5 fire times, in the zone")
    pause: PauseState
    priority: int
    concurrency: str
    misfire: str
    retries: int
    timeout_ms: int | None


class JobStatsList(_View):
    jobs: tuple[JobStats, ...]


def _dump(permissions: Permissions) -> dict[str, JsonValue]:
    return permissions.model_dump(mode="json", exclude_defaults=True)


def plugin_summary(host: Host, plugin: LoadedPlugin) -> PluginSummary:
    manifest = plugin.manifest
    return PluginSummary(
        id=manifest.id,
        version=manifest.version,
        name=manifest.name,
        description=str(manifest.description),
        distribution=plugin.entry_point.dist,
        enabled=host.config.plugin_enabled(manifest.id),
        jobs=tuple(job.id for job in manifest.jobs),
    )


def plugin_list(host: Host) -> PluginList:
    return PluginList(
        plugins=tuple(plugin_summary(host, p) for p in host.discovery.plugins),
        problems=tuple(
            PluginProblemView(
                entry_point=problem.entry_point.name,
                distribution=problem.entry_point.dist,
                kind=problem.kind,
                reason=problem.reason,
            )
            for problem in host.problems
        ),
    )


@functools.cache
def enforcement_levels() -> dict[str, str]:
    """What the kernel enforces here; probed once per process (the machine does not change)."""
    return dict(diagnose().capabilities)


def _inspected_request(host: Host, plugin: LoadedPlugin, spec: JobSpec) -> RunRequest:
    """The request a run of ``spec`` would get (no run id): what inspection reads from."""
    manifest = plugin.manifest
    override = host.config.job_override(manifest.id, spec.id)
    return RunRequest(
        handler=spec.handler,
        workspace=str(host.config.workspace),
        context=RunContext(
            job_id=spec.id, plugin_id=manifest.id, plugin_version=manifest.version, run_id="-"
        ),
        permissions=run_permissions(
            manifest, spec.id, quotas=override.quotas if override else None
        ),
        grants=host.config.grants_for(manifest.id),
        python_path=tuple(str(path) for path in host.config.plugin_paths),
    )


def job_permissions(host: Host, plugin: LoadedPlugin, spec: JobSpec) -> JobPermissions:
    """What ``plugbox plugins inspect`` shows for one job, as a value."""
    request = _inspected_request(host, plugin, spec)
    declared, grants = request.permissions, request.grants
    read_roots, write_roots = fs_roots.workspace_roots(declared, grants)
    return JobPermissions(
        declared=_dump(declared),
        granted=tuple(_dump(g) for g in grants),
        effective="declared ∩ every grant" if grants else "declared",
        quotas_in_force=request.quotas(DEFAULT_QUOTAS).model_dump(mode="json"),
        kernel_read_roots=tuple(r or "." for r in read_roots),
        kernel_write_roots=tuple(r or "." for r in write_roots),
        # The same computation every run record's enforcement.kernel comes from.
        kernel=kernel_grants(request, code_paths()).model_dump(mode="json"),
    )


def plugin_detail(host: Host, plugin: LoadedPlugin) -> PluginDetail:
    summary = plugin_summary(host, plugin)
    return PluginDetail(
        **summary.model_dump(),
        permissions=_dump(plugin.manifest.permissions),
        job_permissions={
            spec.id: job_permissions(host, plugin, spec) for spec in plugin.manifest.jobs
        },
        enforcement=enforcement_levels(),
    )


def schedule_for(host: Host, plugin_id: str, spec: JobSpec) -> tuple[str | None, str]:
    """The schedule and zone in force: the operator's ``[jobs]`` override, else the manifest's."""
    override = host.config.job_override(plugin_id, spec.id)
    schedule = override.schedule if override and override.schedule else spec.schedule
    timezone = override.timezone if override and override.timezone else spec.timezone
    return schedule, timezone


@functools.lru_cache(maxsize=4096)  # cron_descriptor re-reads its locale file on every call
def _in_words(resolved: str, has_seconds: bool, timezone: str) -> str | None:
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    fields = resolved if has_seconds else " ".join(resolved.split()[1:])
    try:
        words = ExpressionDescriptor(fields, options).get_description()
    except Exception:  # a phrase is a courtesy: a form the describer cannot read gets none
        return None
    return f"{words} ({timezone})"


def _fires(schedule: Schedule, count: int) -> tuple[datetime, ...]:
    return tuple(islice(schedule.iter_after(datetime.now(UTC)), count))


def _schedule_fields(
    host: Host, plugin_id: str, spec: JobSpec, fire_count: int
) -> tuple[str | None, str, str | None, str | None, tuple[datetime, ...]]:
    """Schedule and zone in force, in words, why unusable, and the next ``fire_count`` fires."""
    schedule, timezone = schedule_for(host, plugin_id, spec)
    fires: tuple[datetime, ...] = ()
    words = error = None
    if schedule is not None:
        try:
            parsed = parse_schedule(schedule, timezone)  # ${NAME}s from os.environ, read now
            words = _in_words(parsed.resolved, parsed.has_seconds, timezone)
            fires = _fires(parsed, fire_count)
        except ScheduleError as err:
            error = str(err)
    return schedule, timezone, words, error, fires


def _enabled(host: Host, plugin_id: str, spec: JobSpec) -> bool:
    override = host.config.job_override(plugin_id, spec.id)
    return spec.enabled if override is None or override.enabled is None else override.enabled


def _summary_fields(
    host: Host,
    plugin: LoadedPlugin,
    spec: JobSpec,
    paused: bool,
    stats: JobStats | JobTally | None,
    fire_count: int,
) -> tuple[dict[str, Any], tuple[datetime, ...]]:
    plugin_id = plugin.manifest.id
    schedule, timezone, words, error, fires = _schedule_fields(host, plugin_id, spec, fire_count)
    enabled = _enabled(host, plugin_id, spec)
    state = _state(host, plugin_id, spec, paused)
    fields = {
        "id": f"{plugin_id}:{spec.id}",
        "plugin": plugin_id,
        "job": spec.id,
        "description": str(spec.description),
        "tags": spec.tags,
        "state": state,
        "enabled": enabled,
        "paused": paused,
        "schedule": schedule,
        "timezone": timezone,
        "schedule_words": words,
        "schedule_error": error,
        "next_fire": fires[0] if fires and enabled and not paused else None,
        "last_run": stats.last_run if stats else None,
        "success_rate": stats.success_rate if stats else None,
    }
    return fields, fires


def _state(host: Host, plugin_id: str, spec: JobSpec, paused: bool) -> JobState:
    return "paused" if paused else ("enabled" if _enabled(host, plugin_id, spec) else "disabled")


class UnknownCursorError(LookupError):
    def __init__(self, cursor: str) -> None:
        super().__init__(
            f"the cursor {cursor!r} names no job of this host (its plugins changed since the"
            " previous page); list again from the first page"
        )


def job_list(
    host: Host,
    *,
    plugin: str | None = None,
    tag: str | None = None,
    state: JobState | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> JobList:
    """The jobs in discovery order, filtered; at most ``limit`` of them, after the job id
    ``cursor`` (a page's ``next_cursor``). Reads the store's tallies for the page's jobs only,
    so a page costs the same however long the history is (ADR 0030)."""
    paused = host.store.paused_jobs()
    chosen: list[tuple[LoadedPlugin, JobSpec, str]] = []
    seen_cursor = cursor is None
    more = False
    for loaded in host.plugins:
        plugin_id = loaded.manifest.id
        if plugin is not None and plugin_id != plugin:
            continue
        for spec in loaded.manifest.jobs:
            key = f"{plugin_id}:{spec.id}"
            if not seen_cursor:
                seen_cursor = key == cursor
                continue
            if tag is not None and tag not in spec.tags:
                continue
            if state is not None and _state(host, plugin_id, spec, key in paused) != state:
                continue
            if limit is not None and len(chosen) == limit:
                more = True
                break
            chosen.append((loaded, spec, key))
        if more:
            break
    if not seen_cursor and cursor is not None:
        raise UnknownCursorError(cursor)
    tallies = host.store.tallies(key for _, _, key in chosen)
    found = [
        JobSummary(**_summary_fields(host, loaded, spec, key in paused, tallies.get(key), 1)[0])
        for loaded, spec, key in chosen
    ]
    return JobList(jobs=tuple(found), next_cursor=chosen[-1][2] if more else None)


def job_detail(host: Host, key: str) -> JobDetail:
    """``key`` is PLUGIN:JOB; :class:`~plugbox.host.services.UnknownJobError` if unknown."""
    plugin, spec = host.job(key)
    pause = host.store.pause_state(key)
    fields, fires = _summary_fields(
        host, plugin, spec, pause.paused, host.store.stats(key).get(key), 5
    )
    return JobDetail(
        **fields,
        next_fires=fires,
        pause=pause,
        priority=spec.priority,
        concurrency=spec.concurrency,
        misfire=spec.misfire,
        retries=spec.retries,
        timeout_ms=spec.timeout_ms,
    )


# -- scheduling, as `plugbox plugins inspect` shows it --------------------------------------
class JobScheduling(_View):
    """When and how a job runs, as this host will run it: plugbox.toml's [jobs] table applied."""

    schedule: str | None = Field(description="cron expression in force; null: manual only")
    timezone: str
    schedule_words: str | None = Field(description="the schedule for a person, in its zone")
    schedule_error: str | None = Field(description="why the schedule cannot be used")
    overridden: tuple[str, ...] = Field(description="what plugbox.toml's [jobs] table sets")
    enabled: bool
    run_on_startup: bool
    timeout_ms: int = Field(description="wall-clock limit in force (declared, override, grants)")
    priority: int
    concurrency: str
    misfire: str
    catch_up_limit: int = Field(description="most missed fires run when misfire is catch_up")
    jitter_ms: int
    retries: int
    retry_delay_ms: int
    retry_max_delay_ms: int
    retry_delays_ms: tuple[int, ...] = Field(
        description="the wait before each retry: exponential backoff, varied ±10% at run time"
    )


def job_scheduling(host: Host, plugin: LoadedPlugin, spec: JobSpec) -> JobScheduling:
    """What ``plugbox plugins inspect`` shows of one job's schedule and run policy."""
    plugin_id = plugin.manifest.id
    schedule, timezone, words, error, _ = _schedule_fields(host, plugin_id, spec, 0)
    override = host.config.job_override(plugin_id, spec.id)
    overridden = () if override is None else tuple(sorted(override.model_fields_set))
    quotas = _inspected_request(host, plugin, spec).quotas(DEFAULT_QUOTAS)
    base, cap = spec.retry_delay_ms, spec.retry_max_delay_ms
    return JobScheduling(
        schedule=schedule,
        timezone=timezone,
        schedule_words=words,
        schedule_error=error,
        overridden=overridden,
        enabled=_enabled(host, plugin_id, spec),
        run_on_startup=spec.run_on_startup,
        timeout_ms=quotas.timeout_ms or 0,
        priority=spec.priority,
        concurrency=spec.concurrency,
        misfire=spec.misfire,
        catch_up_limit=spec.catch_up_limit,
        jitter_ms=spec.jitter_ms,
        retries=spec.retries,
        retry_delay_ms=base,
        retry_max_delay_ms=cap,
        retry_delays_ms=tuple(backoff_ms(n, base, cap, None) for n in range(1, spec.retries + 1)),
    )
