"""Prometheus metrics of one ``plugbox serve``: a registry of its own, rendered for ``GET /metrics``.

Two kinds of figure (docs/adr/0014-metrics.md):

- **Events this process sees** — runs finishing, sandbox kills, denials, scheduler lag — are
  counters and histograms updated as they happen (:meth:`HostMetrics.observe_run`, a listener on
  :meth:`~plugbox.host.services.Host.finished`, and :meth:`HostMetrics.observe_lag`). They start
  at zero with the process, as Prometheus counters do; ``rate()`` and ``increase()`` handle the
  reset. Runs made by another process (``plugbox jobs run`` in a shell) are not in them.
- **State** — each job's last success and next fire, the queue, busy workers, plugins — is read
  at scrape time by :class:`_StateCollector`: the last successes from one row per job that the
  store keeps current for every process (``job_state.last_success_us``), the rest from the
  scheduler's memory. A scrape never aggregates run history, however long it is.

The registry is not the global default one: the host's figures are exactly these, and a test
can hold two hosts' metrics side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from plugbox.host.store import RunRecord, RunStore

#: Run wall time, seconds: from a quick check to the longest sensible job.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
#: Peak resident memory of a run, bytes: 8 MiB to 2 GiB.
MEMORY_BUCKETS = tuple(
    float(mib * 1024 * 1024) for mib in (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
)
#: How late a run started after it was due, seconds; the target is under 50 ms.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)

#: A rendered exposition is served again for this long (seconds) before it is rendered anew.
MAX_AGE_S = 1.0

# The *_created series would double every counter and histogram, and nothing here uses them.
# This process is plugbox's own, so switching them off process-wide is ours to decide.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class ServeSnapshot:
    """What the running scheduler knows at one instant (``Daemon.snapshot``)."""

    queue_depth: int
    workers_busy: int
    next_fires: Mapping[str, datetime] = field(default_factory=dict)
    plugins_loaded: int = 0
    plugin_load_errors: int = 0


class _StateCollector(Collector):
    """Gauges read when Prometheus scrapes: the store's per-job row and the scheduler's state."""

    def __init__(
        self, store: Callable[[], RunStore], snapshot: Callable[[], ServeSnapshot]
    ) -> None:
        self._store = store
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        # Registering calls describe() (or else collect()) to check names: nothing is read then.
        return [GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in _STATE_METRICS]

    def collect(self) -> Iterable[Metric]:
        last, fire, depth, busy, loaded, errors = (
            GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in _STATE_METRICS
        )
        for job, when in sorted(self._store().last_successes().items()):
            last.add_metric([job], when.timestamp())
        state = self._snapshot()
        for job, when in sorted(state.next_fires.items()):
            fire.add_metric([job], when.timestamp())
        depth.add_metric([], state.queue_depth)
        busy.add_metric([], state.workers_busy)
        loaded.add_metric([], state.plugins_loaded)
        errors.add_metric([], state.plugin_load_errors)
        return [last, fire, depth, busy, loaded, errors]


_STATE_METRICS: tuple[tuple[str, str, list[str]], ...] = (
    (
        "plugbox_job_last_success_timestamp_seconds",
        "When the job's latest successful run finished (Unix time), by any process",
        ["job"],
    ),
    (
        "plugbox_job_next_fire_timestamp_seconds",
        "When the scheduler fires the job next (Unix time); absent when paused or unscheduled",
        ["job"],
    ),
    ("plugbox_queue_depth", "Fires waiting for a free worker", []),
    ("plugbox_workers_busy", "Workers running a job now", []),
    ("plugbox_plugins_loaded", "Plugins discovered, valid and enabled", []),
    ("plugbox_plugin_load_errors", "Installed plugins skipped because they failed to load", []),
)


class HostMetrics:
    """The metrics of one host process, and their exposition for ``GET /metrics``."""

    def __init__(
        self, store: Callable[[], RunStore], snapshot: Callable[[], ServeSnapshot]
    ) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "plugbox_runs_total",
            "Runs this host finished, by outcome and by what started them",
            ["plugin", "job", "status", "trigger"],
            registry=self.registry,
        )
        # The histograms carry no labels: per job they would be 15 series each for every job
        # (30,000 lines at 1,000 jobs, seconds to render); per-job percentiles are in
        # GET /jobs/stats, from the store.
        self.duration = Histogram(
            "plugbox_run_duration_seconds",
            "Wall time of each run this host finished",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.peak_memory = Histogram(
            "plugbox_run_peak_memory_bytes",
            "Peak resident memory of each run's process tree",
            buckets=MEMORY_BUCKETS,
            registry=self.registry,
        )
        self.cpu = Counter(
            "plugbox_run_cpu_seconds_total",
            "CPU time (user + system) the runs of each plugin used",
            ["plugin"],
            registry=self.registry,
        )
        self.kills = Counter(
            "plugbox_sandbox_kills_total",
            "Runs the sandbox killed, by why (timeout, memory, cpu, output, cancelled, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.denials = Counter(
            "plugbox_permission_denials_total",
            "Distinct runtime calls a run was refused, by plugin and capability (fs, net, ...)",
            ["plugin", "capability"],
            registry=self.registry,
        )
        self.lag = Histogram(
            "plugbox_scheduler_lag_seconds",
            "How long after it was due each run started (a worker took it)",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, snapshot))
        #: How long one render serves later scrapes (seconds); 0 renders every time.
        self.max_age_s = MAX_AGE_S
        self._render_lock = threading.Lock()
        self._rendered: dict[str, tuple[float, bytes, str]] = {}  # encoding -> (at, body, type)

    def observe_run(self, record: RunRecord) -> None:
        """Count one finished run (a :attr:`Host.listeners` entry)."""
        plugin, job = record.plugin_id, record.job
        self.runs.labels(plugin, job, record.status, record.trigger).inc()
        if record.duration_ms is not None:
            self.duration.observe(record.duration_ms / 1000)
        if record.peak_memory_mb is not None:
            self.peak_memory.observe(record.peak_memory_mb * 1024 * 1024)
        if record.cpu_ms:
            self.cpu.labels(plugin).inc(record.cpu_ms / 1000)
        if record.kill_reason:
            self.kills.labels(record.kill_reason).inc()
        for denial in record.denials:
            self.denials.labels(plugin, denial.operation.partition(".")[0]).inc()

    def observe_lag(self, seconds: float) -> None:
        """One run started ``seconds`` after it was due (never negative: early is on time)."""
        self.lag.observe(max(0.0, seconds))

    def render_metrics(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition and its content type, for a plain route: ``Response(body,
        media_type=content_type)`` (``make_asgi_app`` would answer ``/metrics`` with a 307).

        ``accept`` is the scraper's ``Accept`` header: OpenMetrics when it asks for it, else the
        classic text format 0.0.4, which every Prometheus reads.
        """
        encoder, content_type = choose_encoder(accept)
        # One render serves every scrape for MAX_AGE_S: with 1,000 jobs a render is thousands
        # of lines of Python formatting, and a scraper (or a dashboard's burst) asking again
        # within the second learns nothing new. The lock makes concurrent scrapes wait for one
        # render instead of each doing its own.
        with self._render_lock:
            cached = self._rendered.get(content_type)
            now = time.monotonic()
            if cached is not None and now - cached[0] < self.max_age_s:
                return cached[1], cached[2]
            body = encoder(self.registry)
            self._rendered[content_type] = (time.monotonic(), body, content_type)
            return body, content_type
