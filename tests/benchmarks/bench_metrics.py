"""Cost of one ``GET /metrics`` body with 1,000 jobs and 100,000 stored runs (issue 10).

Run: ``.venv/bin/python tests/benchmarks/bench_metrics.py``. Fills a SQLite run store with
100,000 finished runs of 1,000 jobs, gives the host's metrics every series a busy host would have
(every job has finished runs in this process: counters and both histograms for 1,000 jobs, a next
fire and a last success each), then renders the exposition as scrapes do. Prints one JSON
object: ``render_p50_ms``/``render_p99_ms`` (a fresh render each time, wall clock),
``render_cpu_p50_ms`` (its CPU time, which the machine's other load does not inflate), ``metrics_p99_ms``
(scrapes as served: one render serves a second of them), ``body_bytes``, ``series`` and the
machine's load. The target for the whole request is p99 <= 50 ms; this is the part plugbox adds
to the HTTP stack's own.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from plugbox.host.metrics import HostMetrics, ServeSnapshot
from plugbox.host.store import RunRecord, SqlRunStore
from plugbox.host.store.sql import runs, to_us

JOBS = 1_000
RUNS = 100_000
SCRAPES = 200


def fill(store: SqlRunStore, start: datetime) -> list[RunRecord]:
    """100,000 rows written straight to the table (validating each as a RunRecord would make
    filling the slowest part); the last 5,000 returned as records for the in-process counters."""
    rng = random.Random(7)
    rows = []
    for index in range(RUNS):
        began = to_us(start + timedelta(seconds=index))
        duration = rng.randint(5, 5000)
        job_index = index % JOBS
        rows.append(
            {
                "run_id": f"run{index:08d}",
                "job": f"plugin{job_index % 50}:job{job_index}",
                "plugin_id": f"plugin{job_index % 50}",
                "job_id": f"job{job_index}",
                "status": "success" if rng.random() < 0.9 else "failed",
                "trigger": "schedule",
                "attempt": 1,
                "first_run_id": f"run{index:08d}",
                "scheduled_at_us": began,
                "started_at_us": began,
                "finished_at_us": began + duration * 1000,
                "sort_at_us": began,
                "duration_ms": duration,
                "peak_memory_mb": rng.uniform(10, 300),
                "cpu_ms": rng.randint(1, 3000),
                "events": [],
                "events_truncated": False,
                "log": [],
                "log_truncated": False,
                "output": "",
                "output_truncated": False,
            }
        )
    with store.engine.begin() as conn:
        conn.execute(insert(runs), rows)
        # As migration 4 fills job_state.last_success_us for history written before it.
        conn.execute(
            text(
                "INSERT INTO job_state (job, paused, last_success_us) SELECT job, 0,"
                " max(finished_at_us) FROM runs WHERE status = 'success' GROUP BY job"
            )
        )
    return [store.get(row["run_id"]) for row in rows[-5 * JOBS :]]


def timed(
    render: Callable[[], object], times: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    timings = []
    for _ in range(times):
        began = clock()
        render()
        timings.append((clock() - began) * 1000)
    return sorted(timings)


def p99(timings: list[float]) -> float:
    return round(timings[max(0, int(0.99 * len(timings)) - 1)], 2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlRunStore(f"sqlite:///{Path(tmp) / 'plugbox.db'}")
        now = datetime.now(UTC)
        records = fill(store, now - timedelta(seconds=RUNS))
        fires = {f"plugin{i % 50}:job{i}": now + timedelta(seconds=i) for i in range(JOBS)}
        snapshot = ServeSnapshot(
            queue_depth=3,
            workers_busy=2,
            next_fires=fires,
            plugins_loaded=50,
            plugin_load_errors=0,
        )
        metrics = HostMetrics(lambda: store, lambda: snapshot)
        for record in records:  # every job has finished runs in this process
            metrics.observe_run(record)
            metrics.observe_lag(0.003)
        body, _ = metrics.render_metrics()
        cached = timed(metrics.render_metrics, SCRAPES * 10)
        metrics.max_age_s = 0
        fresh = timed(metrics.render_metrics, SCRAPES)
        # CPU time of this thread: what a render costs without the machine's other load.
        cpu = timed(metrics.render_metrics, SCRAPES // 4, time.thread_time)
        store.close()
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    result = {
        "jobs": JOBS,
        "runs_stored": RUNS,
        "render_p50_ms": round(statistics.median(fresh), 2),
        "render_p99_ms": p99(fresh),
        "render_cpu_p50_ms": round(statistics.median(cpu), 2),
        "metrics_p99_ms": round(cached[max(0, int(0.99 * len(cached)) - 1)], 3),
        "body_bytes": len(body),
        "series": series,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
