"""The host's parts, built lazily from one configuration: store, runner, discovered plugins.

The CLI builds one :class:`Host` per command and closes it; ``plugbox serve`` keeps one for its
lifetime. Nothing here starts a child or opens the database until a command asks for it, and
nothing is imported before then either: ``plugbox runs list`` never loads discovery or the
sandbox runner, and a command answered from the discovery cache never starts a child.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugbox.host.config import HostConfig, ensure_state_dir

if TYPE_CHECKING:
    from plugbox.host.discovery import DiscoveryReport, LoadedPlugin, PluginProblem
    from plugbox.host.execute import RunPlan
    from plugbox.host.store import RunRecord, RunStore
    from plugbox.sandbox import SandboxRunner
    from plugbox.sdk import JobSpec


class UnknownJobError(LookupError):
    """A ``PLUGIN:JOB`` that no loaded plugin provides."""


@dataclass
class Host:
    config: HostConfig

    @functools.cached_property
    def store(self) -> RunStore:
        from plugbox.host.store import SqlRunStore

        ensure_state_dir(self.config)
        return SqlRunStore(self.config.database_url)

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
    ) -> RunRecord:
        """Run ``plan`` with everything the operator configured for it, record it, return it.

        The one place a run meets the configuration — workspace, grants, per-job quota
        overrides, plugin paths, host id — for ``plugbox jobs run`` and ``plugbox serve`` alike.
        """
        from plugbox.host.execute import execute

        plugin_id = plan.plugin.manifest.id
        override = self.config.job_override(plugin_id, plan.job_id)
        return execute(
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
        )

    def close(self) -> None:
        if "runner" in self.__dict__:
            self.runner.close()
        if "store" in self.__dict__:
            self.store.close()
