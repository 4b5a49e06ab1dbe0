"""What the operator set for each job — config values, secrets — matched to what plugins declare.

``plugbox.toml`` holds ``[plugins.ID.config]``, ``[jobs."PLUGIN:JOB".config]`` and
``[plugins.ID.secrets]``; a manifest declares each job's config keys (and schema) and secrets.
This module joins the two: the values one run gets (:func:`job_settings`, used by
``Host.execute``) and every mismatch, located by file, table and key, for ``plugbox serve`` to
refuse at start (:func:`check_plugin_settings`). The rules themselves — which keys are known,
what a schema accepts, how a bound rule resolves — live in the SDK (``plugbox.sdk.job_config``,
``plugbox.sdk.permissions.bindings``), shared with the test harness.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugbox.host.config.secrets import read_secrets
from plugbox.sdk.errors import NotConfiguredError, Problem
from plugbox.sdk.job_config import accepts, config_problems
from plugbox.sdk.manifest import Manifest, declared_config_keys

if TYPE_CHECKING:
    from plugbox.host.config import HostConfig
    from plugbox.host.discovery import LoadedPlugin

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(part: str) -> str:
    return part if _BARE_KEY.fullmatch(part) else json.dumps(part)


@dataclass(frozen=True, slots=True)
class JobSettings:
    """One job's operator values: config (plugin table, then job table), secrets, and where
    each was (or is to be) set in plugbox.toml."""

    plugin_id: str
    job_id: str
    config: dict[str, Any]
    job_keys: frozenset[str]

    def locate(self, kind: str, key: str) -> str:
        """``plugins.weather.config.api_url`` or ``jobs."weather:fetch".config.api_url``.

        A config key set in the job's table is located there; any other (set in the plugin's
        table, or not set at all) in the plugin's, which serves every job of the plugin.
        """
        plugin = f"plugins.{_key(self.plugin_id)}.{kind}"
        if kind == "config" and key in self.job_keys:
            table = f"jobs.{_key(f'{self.plugin_id}:{self.job_id}')}.config"
        else:
            table = plugin
        return f"{table}.{_key(key)}" if key else table


def job_settings(config: HostConfig, manifest: Manifest, job_id: str) -> JobSettings:
    """The config values the operator set for ``job_id`` (only keys it accepts are taken from
    the plugin's table, so one table serves jobs with different keys; the job's table is taken
    whole, so a misspelt key there is reported)."""
    spec = manifest.job(job_id)
    plugin = config.plugins.get(manifest.id)
    job = config.jobs.get(f"{manifest.id}:{job_id}")
    from_plugin = {k: v for k, v in (plugin.config if plugin else {}).items() if accepts(spec, k)}
    from_job = dict(job.config) if job is not None else {}
    return JobSettings(manifest.id, job_id, {**from_plugin, **from_job}, frozenset(from_job))


def job_secrets(
    config: HostConfig, manifest: Manifest, job_id: str
) -> tuple[dict[str, str], list[Problem]]:
    """The values of the secrets ``job_id`` declares, read now, and a problem per missing one."""
    plugin = config.plugins.get(manifest.id)
    return read_secrets(
        plugin.secrets if plugin is not None else {},
        manifest.secret_names(job_id),
        config_base(config),
        config.workspace,
        f"plugins.{_key(manifest.id)}.secrets",
    )


def config_base(config: HostConfig) -> Path:
    """The directory relative secret files are read from: plugbox.toml's, else the cwd."""
    return config.source.parent if config.source is not None else Path.cwd()


def unconfigured_jobs(
    config: HostConfig, plugins: Sequence[LoadedPlugin]
) -> dict[str, NotConfiguredError]:
    """The jobs that would not run now, each with what to set: ``plugbox serve`` says so at
    start, so a missing key is seen before the first fire records it."""
    from plugbox.sandbox.request import request_for_job

    found: dict[str, NotConfiguredError] = {}
    for loaded in plugins:
        manifest = loaded.manifest
        for spec in manifest.jobs:
            settings = job_settings(config, manifest, spec.id)
            secrets, unset = job_secrets(config, manifest, spec.id)
            key = f"{manifest.id}:{spec.id}"
            try:
                request_for_job(
                    manifest,
                    spec.id,
                    workspace=str(config.workspace),
                    run_id="check",
                    scheduled_at=datetime.now(UTC),
                    config=settings.config,
                    secrets=secrets,
                    locate=settings.locate,
                )
            except NotConfiguredError as err:
                located = {problem.location for problem in unset}
                found[key] = NotConfiguredError(
                    key, [p for p in err.problems if p.location not in located] + unset
                )
            else:
                if unset:
                    found[key] = NotConfiguredError(key, unset)
    return found


def check_plugin_settings(config: HostConfig, plugins: Sequence[LoadedPlugin]) -> list[Problem]:
    """Every operator value that does not fit what the installed plugins declare.

    A config key no job of the plugin declares, a value its job's schema refuses, a secret
    source for a name the plugin never asks for. Values that are merely missing are not
    problems here: that job alone does not run, and its run record says what to set.
    """
    problems: list[Problem] = []
    for loaded in plugins:
        manifest = loaded.manifest
        table = config.plugins.get(manifest.id)
        declared = {key for spec in manifest.jobs for key in declared_config_keys(spec)}
        if table is not None:
            for key in table.config:
                if not any(accepts(spec, key) for spec in manifest.jobs):
                    names = ", ".join(sorted(declared)) or "none"
                    problems.append(
                        Problem(
                            f"plugins.{_key(manifest.id)}.config.{_key(key)}",
                            f"no job of plugin {manifest.id!r} declares this config key;"
                            f" its keys: {names}",
                        )
                    )
            wanted = {name for spec in manifest.jobs for name in manifest.secret_names(spec.id)}
            for name in table.secrets:
                if name not in wanted:
                    problems.append(
                        Problem(
                            f"plugins.{_key(manifest.id)}.secrets.{name}",
                            f"plugin {manifest.id!r} does not declare this secret, so no job"
                            f" would get it; it declares: {', '.join(sorted(wanted)) or 'none'}",
                        )
                    )
        for spec in manifest.jobs:
            settings = job_settings(config, manifest, spec.id)
            if not settings.config:
                continue  # nothing set: a missing required value is the run's to report
            problems += config_problems(spec, settings.config, partial(settings.locate, "config"))
    return problems
