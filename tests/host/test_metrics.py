"""``plugbox serve``'s Prometheus metrics: real jobs fired by a real scheduler, the exposition
parsed as Prometheus would, and every figure checked against the run store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugbox.host.config import load_config
from plugbox.host.daemon import Daemon
from plugbox.host.metrics import HostMetrics, ServeSnapshot
from plugbox.host.services import Host

METER = """
import time

from plugbox.sdk import define_manifest, hookimpl, job


@job("ok", schedule="* * * * * *")
def ok(ctx):
    return {"run": ctx.run_count}


@job("denied", schedule="* * * * * *")
def denied(ctx):
    ctx.runtime.fs.write_text("notes.txt", "not declared")


@job("slow", schedule="*/2 * * * * *", timeout="500ms")
def slow(ctx):
    time.sleep(30)


manifest = define_manifest(id="meter", version="1.0", name="Meter", jobs=[ok, denied, slow])


@hookimpl
def plugbox_manifest():
    return manifest
"""


def install(site: Path, name: str, module: str, code: str | None) -> None:
    info = site / f"pbt_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pbt-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[plugbox]\n{name} = {module}\n")
    if code is not None:
        (site / f"{module}.py").write_text(code)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    site = tmp_path / "site"
    install(site, "meter", "pbt_meter", METER)
    install(site, "broken", "pbt_missing_module", None)  # fails to load: one load error
    path = tmp_path / "plugbox.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nworkspace = "{tmp_path / "ws"}"\n'
        f'plugin_paths = ["{site}"]\nworkers = 4\nshutdown_grace = "1s"\n'
    )
    return path


def parse(body: bytes) -> dict[str, list[Any]]:
    """Samples by name, as a Prometheus server reads the exposition."""
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    found = [
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


@pytest.fixture
def own_signals() -> Iterator[None]:
    """Daemon.run installs its handlers; give the test runner its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_metrics_of_real_runs_match_the_run_store(config: Path, own_signals: None) -> None:
    host = Host(load_config(config, env={"HOME": str(config.parent)}))
    daemon = Daemon(host)
    daemon.metrics.max_age_s = 0  # every render below is a fresh one
    scraped: dict[str, Any] = {}

    def operator() -> None:
        # Waits on the store (no sleeps racing the scheduler), scrapes while serving, then stops
        # the host as SIGTERM does.
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = host.store.stats()
                counts = {job: s.counts for job, s in stats.items()}
                if (
                    counts.get("meter:ok", {}).get("success", 0) >= 3
                    and counts.get("meter:denied", {}).get("failed", 0) >= 2
                    and counts.get("meter:slow", {}).get("timeout", 0) >= 1
                ):
                    break
                time.sleep(0.2)
            scraped["live"] = daemon.metrics.render_metrics()
            scraped["openmetrics"] = daemon.metrics.render_metrics(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )
            scraped["at"] = datetime.now(UTC)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=operator)
    helper.start()
    try:
        assert daemon.run() == 0
        helper.join(timeout=30)
        body, content_type = daemon.metrics.render_metrics()
        records = host.store.list(limit=10_000)
        last = host.store.last_successes()
    finally:
        host.close()

    assert content_type.startswith("text/plain; version=0.0.4")  # what every Prometheus reads
    live = parse(scraped["live"][0])
    # State read at scrape time from the running scheduler.
    assert value(live, "plugbox_plugins_loaded") == 2  # example and meter
    assert value(live, "plugbox_plugin_load_errors") == 1  # broken
    next_ok = value(live, "plugbox_job_next_fire_timestamp_seconds", job="meter:ok")
    assert next_ok is not None and next_ok >= scraped["at"].timestamp() - 1
    assert value(live, "plugbox_job_next_fire_timestamp_seconds", job="example:hello-cron")
    assert value(live, "plugbox_queue_depth") is not None
    assert value(live, "plugbox_workers_busy") is not None

    final = parse(body)
    started = [r for r in records if r.started_at is not None]  # not skipped before starting
    expected: dict[tuple[str, str, str], int] = {}
    for record in started:
        key = (record.job, record.status, record.trigger)
        expected[key] = expected.get(key, 0) + 1
    counted = {
        (s.labels["job"], s.labels["status"], s.labels["trigger"]): int(s.value)
        for s in final["plugbox_runs_total"]
    }
    assert counted == expected
    assert all(
        s.labels["plugin"] == s.labels["job"].split(":")[0] for s in final["plugbox_runs_total"]
    )
    ok_runs = [r for r in started if r.job == "meter:ok"]
    timed = [r.duration_ms for r in started if r.duration_ms is not None]
    assert value(final, "plugbox_run_duration_seconds_count") == len(timed)
    assert value(final, "plugbox_run_duration_seconds_sum") == pytest.approx(sum(timed) / 1000)
    measured = [r for r in started if r.peak_memory_mb is not None]
    assert value(final, "plugbox_run_peak_memory_bytes_count") == len(measured)
    cpu = sum(r.cpu_ms or 0 for r in started if r.plugin_id == "meter") / 1000
    assert (value(final, "plugbox_run_cpu_seconds_total", plugin="meter") or 0) == pytest.approx(
        cpu
    )

    timeouts = [r for r in started if r.kill_reason == "timeout"]
    assert timeouts and value(final, "plugbox_sandbox_kills_total", reason="timeout") == len(
        timeouts
    )
    denied = [r for r in started if r.job == "meter:denied"]
    assert all(d.operation == "fs.write" for r in denied for d in r.denials)
    denials = sum(len(r.denials) for r in denied)
    assert denials >= 2
    assert (
        value(final, "plugbox_permission_denials_total", plugin="meter", capability="fs") == denials
    )

    lag_count = value(final, "plugbox_scheduler_lag_seconds_count")
    assert lag_count is not None and lag_count >= len(started)
    assert value(
        final, "plugbox_job_last_success_timestamp_seconds", job="meter:ok"
    ) == pytest.approx(last["meter:ok"].timestamp())
    assert last["meter:ok"] == max(r.finished_at for r in ok_runs if r.status == "success")  # type: ignore[type-var]
    assert value(final, "plugbox_job_last_success_timestamp_seconds", job="meter:slow") is None
    open_body, open_type = scraped["openmetrics"]
    assert open_type.startswith("application/openmetrics-text")
    assert open_body.rstrip().endswith(b"# EOF")


def test_a_run_from_the_shell_moves_last_success_but_not_the_counters(config: Path) -> None:
    plugbox = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert plugbox
    done = subprocess.run(
        [plugbox, "--config", str(config), "jobs", "run", "meter:ok"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
    )
    assert done.returncode == 0, done.stderr
    host = Host(load_config(config, env={"HOME": str(config.parent)}))
    try:
        (run,) = host.store.list()
        metrics = HostMetrics(
            lambda: host.store, lambda: ServeSnapshot(queue_depth=0, workers_busy=0)
        )
        samples = parse(metrics.render_metrics()[0])
    finally:
        host.close()
    assert run.finished_at is not None
    assert value(
        samples, "plugbox_job_last_success_timestamp_seconds", job="meter:ok"
    ) == pytest.approx(run.finished_at.timestamp())
    assert "plugbox_runs_total" not in samples  # counted only by the process that ran it (ADR 0014)


def test_a_render_serves_scrapes_for_its_max_age(config: Path) -> None:
    host = Host(load_config(config, env={"HOME": str(config.parent)}))
    state = {"depth": 1}
    try:
        metrics = HostMetrics(
            lambda: host.store,
            lambda: ServeSnapshot(queue_depth=state["depth"], workers_busy=0),
        )
        first = parse(metrics.render_metrics()[0])
        state["depth"] = 7
        assert parse(metrics.render_metrics()[0]) == first  # within MAX_AGE_S: the same body
        metrics.max_age_s = 0
        assert value(parse(metrics.render_metrics()[0]), "plugbox_queue_depth") == 7
    finally:
        host.close()
