"""The host's parts, built lazily from one configuration: store, runner, discovered plugins.

The CLI builds one :class:`Host` per command and closes it; ``plugbox serve`` keeps one for its
lifetime. Nothing here starts a child or opens the database until a command asks for it, and
nothing is imported before then either: ``plugbox runs list`` never loads discovery or the
sandbox runner, and a command answered from the discovery cache never starts a child.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plugbox.host.config import HostConfig, ensure_state_dir

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from plugbox.host.discovery import DiscoveryReport, LoadedPlugin, PluginProblem
    from plugbox.host.execute import RunPlan
    from plugbox.host.store import DeliveryLog, RunRecord, RunStore, SqlRunStore
    from plugbox.host.store.queue import FireQueue
    from plugbox.host.webhooks.notifier import Emit, Notifier
    from plugbox.sandbox import SandboxRunner
    from plugbox.sdk import JobSpec

log = logging.getLogger("plugbox.host")


class UnknownJobError(LookupError):
    """A ``PLUGIN:JOB`` that no loaded plugin provides."""


@dataclass
class Host:
    config: HostConfig
    #: Called with every run this host finishes (after it is stored), e.g. to count it.
    listeners: list[Callable[[RunRecord], None]] = field(default_factory=list)
    _notifier: Notifier | None = field(default=None, init=False, repr=False)

    @functools.cached_property
    def _sql(self) -> SqlRunStore:
        from plugbox.host.store import SqlRunStore

        ensure_state_dir(self.config)
        return SqlRunStore(self.config.database_url)

    @property
    def store(self) -> RunStore:
        return self._sql

    @property
    def store_engine(self) -> Engine:
        """The run store's SQLAlchemy engine (what replicas of ``serve`` share)."""
        return self._sql.engine

    @functools.cached_property
    def fire_queue(self) -> FireQueue:
        """The fires waiting in the run store's database, claimed under leases by this process
        (its lease owner: the host id and a per-process suffix, so a restart is a new owner)."""
        from plugbox.host.store.queue import FireQueue

        owner = f"{self.config.host_id[:200]}/{uuid.uuid4().hex[:12]}"
        return FireQueue(
            self._sql.engine,
            owner=owner,
            host_id=self.config.host_id,
            lease_s=self.config.lease_ms / 1000,
        )

    @functools.cached_property
    def deliveries(self) -> DeliveryLog:
        """The webhook delivery log, kept in the run store's database."""
        from plugbox.host.store import DeliveryLog

        return DeliveryLog(self._sql.engine)

    def start_webhooks(self, *, resume: bool, emit: Emit | None = None) -> None:
        """Start the webhook sender if ``[[webhooks]]`` are configured (once; later calls do
        nothing). Reads the signing secrets now, so a missing one is a ``ConfigError`` before
        any run. ``resume``: also send what other processes left pending (``plugbox serve``)."""
        if self._notifier is not None or not self.config.webhooks:
            return
        from plugbox.host.webhooks.notifier import Notifier
        from plugbox.host.webhooks.signing import load_secrets

        keys = load_secrets(self.config)
        self._notifier = Notifier(
            self.config.webhooks,
            keys,
            self.store,
            self.deliveries,
            resume=resume,
            emit=emit,
            keep_days=self.config.retention.days,
        )

    def finished(self, record: RunRecord) -> None:
        """Tell the webhooks and listeners that ``record`` (stored, final) is over.

        The one place a finished run is reported, for ``jobs run`` and ``serve`` alike. Nothing
        raised here may reach the caller: the run is recorded already, and a worker thread that
        died on a report would shrink the pool.
        """
        reports: list[Callable[[RunRecord], object]] = list(self.listeners)
        if self._notifier is not None:
            reports.insert(0, self._notifier.notify)
        for report in reports:
            try:
                report(record)
            except Exception:
                log.exception("reporting run %s failed", record.run_id)

    @functools.cached_property
    def runner(self) -> SandboxRunner:
        from plugbox.sandbox import SandboxRunner
        from plugbox.sandbox.run_identity import RunIdentity

        run_uid = self.config.run_uid
        identity = RunIdentity(run_uid, run_uid) if RunIdentity.for_this_host() else None
        # The workspace and plugin paths: the zygote opens the way to them for the run uid.
        reach = (str(self.config.workspace), *(str(p) for p in self.config.plugin_paths))
        return SandboxRunner(identity=identity, reach=reach).start()

    @functools.cached_property
    def discovery(self) -> DiscoveryReport:
        """The installed plugins; a plugin whose files did not change since a previous command
        asked is not imported again (:mod:`plugbox.host.discovery_cache`)."""
        return self._discover(reuse=True)

    def rediscover(self) -> DiscoveryReport:
        """Import every plugin again, in confined children, and remember only these answers."""
        self.__dict__["discovery"] = report = self._discover(reuse=False)
        return report

    def _discover(self, *, reuse: bool) -> DiscoveryReport:
        from plugbox.host.discovery import discover
        from plugbox.host.discovery_cache import DiscoveryCache

        try:
            ensure_state_dir(self.config)
            cache: DiscoveryCache | None = DiscoveryCache(self.config.state_dir, reuse=reuse)
        except OSError:
            # Listing plugins never needed the state directory, and the cache only saves time.
            cache = None
        return discover(
            lambda: self.runner,
            workspace=str(self.config.workspace),
            extra_paths=tuple(str(path) for path in self.config.plugin_paths),
            cache=cache,
        )

    @property
    def plugins(self) -> list[LoadedPlugin]:
        """Loaded plugins the operator has not disabled."""
        return [p for p in self.discovery.plugins if self.config.plugin_enabled(p.manifest.id)]

    @property
    def problems(self) -> tuple[PluginProblem, ...]:
        return self.discovery.problems

    def plugin(self, plugin_id: str) -> LoadedPlugin:
        for loaded in self.plugins:
            if loaded.manifest.id == plugin_id:
                return loaded
        known = ", ".join(sorted(p.manifest.id for p in self.plugins)) or "none"
        raise UnknownJobError(f"no plugin {plugin_id!r} is installed and enabled; plugins: {known}")

    def job(self, key: str) -> tuple[LoadedPlugin, JobSpec]:
        plugin_id, sep, job_id = key.partition(":")
        if not sep or not plugin_id or not job_id:
            raise UnknownJobError(
                f"{key!r} is not a job id; write PLUGIN:JOB, e.g. example:hello-cron"
            )
        plugin = self.plugin(plugin_id)
        try:
            return plugin, plugin.manifest.job(job_id)
        except LookupError as err:
            raise UnknownJobError(str(err)) from None

    def execute(
        self,
        plan: RunPlan,
        *,
        run_id: str | None = None,
        cancel: threading.Event | None = None,
        queued: bool = False,
        write: Callable[[RunRecord], None] | None = None,
    ) -> RunRecord:
        """Run ``plan`` with everything the operator configured for it, record it, return it.

        The one place a run meets the configuration — workspace, grants, per-job quota
        overrides, plugin paths, host id — for ``plugbox jobs run`` and ``plugbox serve`` alike.
        """
        from plugbox.host.execute import execute
        from plugbox.host.plugin_settings import job_secrets, job_settings

        self.start_webhooks(resume=False)
        plugin_id = plan.plugin.manifest.id
        override = self.config.job_override(plugin_id, plan.job_id)
        settings = job_settings(self.config, plan.plugin.manifest, plan.job_id)
        secrets, unset = job_secrets(self.config, plan.plugin.manifest, plan.job_id)
        record = execute(
            plan,
            runner=self.runner,
            store=self.store,
            workspace=str(self.config.workspace),
            grants=self.config.grants_for(plugin_id),
            quotas=override.quotas if override is not None else None,
            host_id=self.config.host_id,
            run_id=run_id,
            cancel=cancel,
            python_path=tuple(str(path) for path in self.config.plugin_paths),
            queued=queued,
            config=settings.config,
            secrets=secrets,
            unset=tuple(unset),
            locate=settings.locate,
            write=write,
        )
        self.finished(record)
        return record

    def check_plugin_settings(self) -> None:
        """Refuse (``ConfigError``, naming file, table and key) operator config values and
        secret sources that do not fit what the installed plugins declare: at ``serve`` start."""
        from plugbox.host.config import ConfigError
        from plugbox.host.plugin_settings import check_plugin_settings

        problems = check_plugin_settings(self.config, self.plugins)
        if problems:
            raise ConfigError(problems, self.config.source)

    def unconfigured_jobs(self) -> dict[str, str]:
        """``PLUGIN:JOB`` → what the operator must set before it runs (bound config, secrets)."""
        from plugbox.host.plugin_settings import unconfigured_jobs

        found = unconfigured_jobs(self.config, self.plugins)
        return {job: "; ".join(str(p) for p in err.problems) for job, err in found.items()}

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
        if "runner" in self.__dict__:
            self.runner.close()
        if "_sql" in self.__dict__:
            self._sql.close()
