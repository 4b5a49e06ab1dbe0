"""The run store on SQLite and on PostgreSQL: adding, updating, listing and reading runs.

Run: ``.venv/bin/python tests/benchmarks/bench_store.py [--runs 10000] [--suite]``. PostgreSQL is
a throwaway server started for the benchmark (``tests/host/pg_cluster.py``, as the tests do: a
unix socket, fsync off), so its figures are the store's and the driver's cost, not a disk's;
SQLite is a WAL file in a temp dir with its usual ``synchronous=NORMAL``.

Per backend, one JSON object with:

- ``add_per_s``: ``add()`` of ``--runs`` finished runs, one transaction each, one thread — what
  the host does as runs end;
- ``add_4_threads_per_s``: the same number added by 4 threads at once (a worker pool);
- ``update_per_s``: ``update()`` of 2,000 of them;
- ``list_50_p50_ms`` / ``list_50_by_job_p50_ms``: the newest 50 runs (all, one job's), 200 times;
- ``list_all_s``: every run in one ``list()``;
- ``get_p50_ms``: ``get()`` of 1,000 random ids;
- ``suite_s`` (with ``--suite``): ``pytest tests/host/store -k BACKEND``, wall time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

from plugbox.host.store import RunRecord, SqlRunStore

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOBS = 50


def _pg_cluster() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pg_cluster", ROOT / "tests/host/pg_cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pg_cluster"] = module
    spec.loader.exec_module(module)
    return module


def _record(i: int, prefix: str = "r") -> RunRecord:
    started = T0 + timedelta(seconds=i)
    return RunRecord(
        run_id=f"{prefix}{i:08d}",
        job=f"bench:job{i % JOBS}",
        status="success",
        scheduled_at=started,
        started_at=started,
        finished_at=started + timedelta(milliseconds=120),
        duration_ms=120,
        result={"ok": True, "n": i},
        log=[{"level": "info", "message": f"run {i}", "at": started.timestamp()}],
        output=f"run {i} done\n",
        host_id="bench",
    )


def _p50_ms(action: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def measure(url: str, runs: int) -> dict[str, float]:
    store = SqlRunStore(url)
    try:
        records = [_record(i) for i in range(runs)]
        start = time.perf_counter()
        for record in records:
            store.add(record)
        add_s = time.perf_counter() - start

        threaded = [_record(i, "t") for i in range(runs)]
        start = time.perf_counter()
        workers = [
            threading.Thread(target=lambda part=part: [store.add(r) for r in part])
            for part in (threaded[k::4] for k in range(4))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        add_threads_s = time.perf_counter() - start

        changed = [r.model_copy(update={"output": "updated\n"}) for r in records[:2000]]
        start = time.perf_counter()
        for record in changed:
            store.update(record)
        update_s = time.perf_counter() - start

        start = time.perf_counter()
        everything = store.list(limit=2 * runs)
        list_all_s = time.perf_counter() - start
        assert len(everything) == 2 * runs

        rng = random.Random(7)
        ids = [r.run_id for r in rng.sample(records, min(1000, runs))]
        picks = iter(ids)
        return {
            "add_per_s": round(runs / add_s),
            "add_4_threads_per_s": round(runs / add_threads_s),
            "update_per_s": round(len(changed) / update_s),
            "list_50_p50_ms": _p50_ms(lambda: store.list(limit=50), 200),
            "list_50_by_job_p50_ms": _p50_ms(lambda: store.list(job="bench:job7", limit=50), 200),
            "list_all_s": round(list_all_s, 3),
            "get_p50_ms": _p50_ms(lambda: store.get(next(picks)), len(ids)),
        }
    finally:
        store.close()


def suite_seconds(backend: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/host/store",
         "-k", backend],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )  # fmt: skip
    return round(time.perf_counter() - start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--suite", action="store_true", help="also time the store test suite")
    args = parser.parse_args()
    result: dict[str, object] = {"runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", args.runs)
    with _pg_cluster().running_cluster() as cluster:
        result["postgresql"] = measure(cluster.create_database("bench"), args.runs)
    if args.suite:
        for backend in ("sqlite", "postgresql"):
            result[backend]["suite_s"] = suite_seconds(backend)  # type: ignore[index]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
