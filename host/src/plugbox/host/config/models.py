"""The operator's configuration as frozen pydantic models: what ``plugbox.toml`` may say.

The models validate values only. Where a value comes from (file, environment, default) and how
relative paths are anchored is the loader's business (:mod:`plugbox.host.config.load`), so these
models never read the environment or the disk — except ``jobs.*.schedule``, whose ``${NAME}``
references are checked against the ``env`` the loader passes in the validation context.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

from plugbox.host.config.secrets import SecretName, SecretSource
from plugbox.host.config.webhooks import WebhookConfig
from plugbox.sdk import parse_duration_ms, parse_schedule
from plugbox.sdk.manifest import ID_PATTERN
from plugbox.sdk.permissions import Permissions, Quotas
from plugbox.sdk.schedules import check_timezone

#: ``plugbox.sandbox.run_identity.RUN_ID``, the default ``run_uid``; written out, not imported,
#: because importing it loads the sandbox's kernel and limits modules (psutil among them) into
#: every command that reads the configuration. tests/host/test_cli_fastread.py keeps them equal.
DEFAULT_RUN_UID = 65532

#: How long ``plugbox serve`` waits for running jobs after SIGTERM before killing them.
DEFAULT_SHUTDOWN_GRACE_MS = 30_000
#: How long a replica's claim on a running run lasts unless renewed (it renews every third).
DEFAULT_LEASE_MS = 10_000
DEFAULT_RETENTION_DAYS = 30
DEFAULT_RETENTION_PER_JOB = 1_000

_ID = re.compile(ID_PATTERN)
_HOST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,252}")


def _plugin_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a plugin id (lowercase letters, digits, '.', '_', '-';"
            " starting with a letter or digit)"
        )
    return value


def _job_key(value: str) -> str:
    plugin_id, sep, job_id = value.partition(":")
    if not sep or not _ID.fullmatch(plugin_id) or not _ID.fullmatch(job_id):
        raise ValueError(
            f'{value!r} is not a job id PLUGIN:JOB; write the table as [jobs."example:hello"]'
            " (quoted: a bare TOML key cannot hold ':', and dots would nest tables)"
        )
    return value


PluginId = Annotated[str, AfterValidator(_plugin_id)]
JobKey = Annotated[str, AfterValidator(_job_key)]


def _read_only(value: Mapping[str, Any]) -> Mapping[str, Any]:
    # A frozen model whose dicts can be edited is not frozen; the config is shared by every part
    # of the host, so one part must not be able to change what another one sees.
    return MappingProxyType(dict(value))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetentionConfig(_Frozen):
    """How much run history the host keeps. ``0`` switches a rule off."""

    days: int = Field(DEFAULT_RETENTION_DAYS, ge=0, description="remove runs older than this")
    per_job: int = Field(
        DEFAULT_RETENTION_PER_JOB, ge=0, description="keep at most this many runs per job"
    )


#: Where ``plugbox serve`` answers HTTP unless told otherwise: this machine only.
DEFAULT_LISTEN = "127.0.0.1:8377"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8377`` for IPv6) as a host and a port; ValueError says why not."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{value!r} is not HOST:PORT; write e.g. 127.0.0.1:8377, 0.0.0.0:8377 or [::1]:8377"
        )
    return host, int(port)


def _listen(value: str) -> str:
    parse_listen(value)
    return value


class HttpConfig(_Frozen):
    """``[http]``: the API ``plugbox serve`` answers on."""

    listen: Annotated[str, AfterValidator(_listen)] = Field(
        DEFAULT_LISTEN,
        description="HOST:PORT; anything but loopback needs a token (plugbox tokens create)",
    )
    metrics_public: bool = Field(
        False, description="true: GET /metrics answers without a token (a scraper on a trusted net)"
    )


class PluginConfig(_Frozen):
    """``[plugins.<id>]``: switch a plugin off, narrow what it may do, set its config and secrets."""

    enabled: bool = Field(True, description="false: the host does not load the plugin's jobs")
    permissions: Permissions | None = Field(
        None,
        description="operator grant: effective = declared ∩ this; absent = no narrowing",
    )
    config: Mapping[str, JsonValue] = Field(
        default_factory=dict, description="config values for every job that declares the key"
    )
    secrets: Mapping[SecretName, SecretSource] = Field(
        default_factory=dict, description="where each secret the plugin declares is read from"
    )

    @field_validator("config", "secrets", mode="after")
    @classmethod
    def _frozen_mapping(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        return _read_only(value)

    max_workers: int | None = Field(
        None, ge=1, description="the most workers of one serve the plugin's runs may hold at once"
    )


class JobOverride(_Frozen):
    """``[jobs."<plugin>:<job>"]``: the operator's say over one job. Unset = the plugin's value."""

    enabled: bool | None = Field(None, description="turn the job's schedule on or off")
    # timezone before schedule: pydantic validates in field order, and the schedule check
    # reads the zone from what has been validated so far.
    timezone: str | None = Field(None, description="IANA zone the schedule is read in")
    schedule: str | None = Field(None, description="cron expression replacing the declared one")
    quotas: Quotas | None = Field(None, description="quota fields replacing the declared ones")
    config: Mapping[str, JsonValue] = Field(
        default_factory=dict, description="config values for this job (over the plugin's)"
    )

    @field_validator("config", mode="after")
    @classmethod
    def _frozen_config(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        return _read_only(value)

    priority: int | None = Field(
        None, ge=0, le=10, description="0-10 replacing the declared priority; higher starts first"
    )

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        if value is not None:
            check_timezone(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Kept as written so the scheduler substitutes ${NAME} itself; checked here with the
        # loader's environment so a bad expression stops the host at start, not at first fire.
        if value is not None:
            env = (info.context or {}).get("env")
            zone = info.data.get("timezone") or "UTC"
            parse_schedule(value, zone if isinstance(zone, str) else "UTC", env)
        return value

    def merged_quotas(self, declared: Quotas) -> Quotas:
        """The declared quotas with every field this override sets replaced."""
        return declared if self.quotas is None else declared.overridden_by(self.quotas)


class HostConfig(_Frozen):
    """Everything an operator configures; build it with :func:`~plugbox.host.config.load_config`.

    The first five fields have no model default because their defaults depend on the machine
    (home directory, working directory, CPU count, host name); the loader supplies them, and
    anchors every path, so a loaded configuration holds absolute paths only.
    """

    state_dir: Path = Field(description="run store and host state; outside the workspace")
    database_url: str = Field(min_length=1, description="SQLAlchemy URL of the run store")
    workspace: Path = Field(description="the workspace root jobs see as their cwd")
    workers: int = Field(ge=1, description="runs at once")
    host_id: str = Field(max_length=255, description="this host's name in run records")
    retention: RetentionConfig = RetentionConfig()
    http: HttpConfig = HttpConfig()
    shutdown_grace_ms: int = Field(
        DEFAULT_SHUTDOWN_GRACE_MS,
        validation_alias="shutdown_grace",
        description="wait this long for runs on shutdown, then kill them",
    )
    lease_ms: int = Field(
        DEFAULT_LEASE_MS,
        ge=1_000,
        validation_alias="lease",
        description="a replica that stops renewing its runs for this long loses them: another"
        " replica records them interrupted and retries them",
    )
    run_uid: int = Field(
        DEFAULT_RUN_UID,
        ge=1,
        le=2**32 - 2,
        description="a root host's jobs run as this uid and gid where every path they read is"
        " readable by other users (plugbox doctor says whether); ignored on other hosts",
    )
    disabled_plugins: tuple[PluginId, ...] = Field((), description="plugin ids not to load")
    plugin_paths: tuple[Path, ...] = Field(
        (), description="extra directories searched for installed plugins, before site-packages"
    )
    plugins: Mapping[PluginId, PluginConfig] = Field(default_factory=dict)
    jobs: Mapping[JobKey, JobOverride] = Field(default_factory=dict)
    webhooks: tuple[WebhookConfig, ...] = Field((), description="[[webhooks]]: run reports")

    _source: Path | None = PrivateAttr(None)

    @field_validator("shutdown_grace_ms", "lease_ms", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration_ms(value)

    @field_validator("host_id")
    @classmethod
    def _host_id(cls, value: str) -> str:
        if not _HOST_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a host id (letters, digits, '.', '_', ':', '-';"
                " at most 253 characters)"
            )
        return value

    @field_validator("plugins", "jobs", mode="after")
    @classmethod
    def _frozen_mapping(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        return _read_only(value)

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from; ``None`` when there was none."""
        return self._source

    def plugin_enabled(self, plugin_id: str) -> bool:
        """False when the plugin is in ``disabled_plugins`` or ``plugins.<id>.enabled = false``.

        Disabling wins: a plugin listed in ``disabled_plugins`` (or ``PLUGBOX_DISABLED_PLUGINS``)
        stays off even if its table says ``enabled = true``.
        """
        if plugin_id in self.disabled_plugins:
            return False
        plugin = self.plugins.get(plugin_id)
        return plugin is None or plugin.enabled

    def grants_for(self, plugin_id: str) -> tuple[Permissions, ...]:
        """The operator's grants that narrow ``plugin_id``: pass them to ``effective_policy``.

        Empty when the operator did not narrow the plugin (the declared permissions apply).
        """
        plugin = self.plugins.get(plugin_id)
        if plugin is None or plugin.permissions is None:
            return ()
        return (plugin.permissions,)

    def max_workers(self) -> dict[str, int]:
        """``[plugins.ID] max_workers`` of every plugin that sets one."""
        return {
            plugin_id: plugin.max_workers
            for plugin_id, plugin in self.plugins.items()
            if plugin.max_workers is not None
        }

    def job_override(self, plugin_id: str, job_id: str) -> JobOverride | None:
        """The ``[jobs."plugin:job"]`` table for this job, or ``None``."""
        return self.jobs.get(f"{plugin_id}:{job_id}")
