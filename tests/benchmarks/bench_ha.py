"""``plugbox serve`` replicas on one PostgreSQL: throughput of fires, claim latency, failover.

Run: ``.venv/bin/python tests/benchmarks/bench_ha.py [--mode fake|sandbox|both] [--jobs 60]
[--seconds 15]``. A throwaway PostgreSQL is started as the tests start it (``pg_cluster.py``).
Each replica is a real ``plugbox serve`` process; ``--jobs`` jobs are due every second.

Modes: ``sandbox`` runs every job in the real sandbox (what an operator gets); ``fake`` swaps the
runner for the in-process one (``run_in_process``: no fork, no kernel layers), so the database
and the claim path are the bottleneck rather than two cores of forks.

Per mode, one JSON object (the last line printed holds both):

- ``replicas``: the replica counts measured (1, 2, 3);
- ``fires_per_s``: per replica count, runs started per second over the steady window;
- ``claim_p99_ms``: per replica count, p99 of (started_at - scheduled_at), both by the database's
  clock: how late a due fire is claimed and started;
- ``duplicates``: fire instants run more than once (attempt 1), summed over every measurement;
- ``missing``: (job, second) pairs in the steady window with no run at all;
- ``failover_s``: 2 replicas, one SIGKILLed while running jobs 4 s long: seconds from the kill to
  the last of its runs recorded ``interrupted`` by the other (lease: 3 s).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

from plugbox.host.store import SqlRunStore

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 3


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pg_cluster = _load("pg_cluster", ROOT / "tests/host/pg_cluster.py")
replicas_kit = _load("serve_replicas", ROOT / "tests/host/test_serve_replicas.py")

FAKE = """
import sys
from plugbox.sandbox import runner
from plugbox.sandbox.inprocess import run_in_process
runner.SandboxRunner.run = lambda self, request, cancel=None: run_in_process(request)
from plugbox.host.cli import main
sys.argv[0] = "plugbox"
sys.exit(main())
"""


class BenchReplica(replicas_kit.Replica):  # type: ignore[misc, name-defined]
    def __init__(self, *args: object, fake: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fake = fake

    def start(self) -> None:
        if not self.fake:
            super().start()
            return
        import subprocess

        argv = [sys.executable, "-c", FAKE, "--config", str(self.config), "serve", "--no-http"]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.dir)}
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env
            )


def _site(root: Path, jobs: int, sleep: float) -> Path:
    site = root / f"site-{jobs}-{sleep}"
    if not site.exists():
        decorator = '"j{i}", schedule="* * * * * *", concurrency="allow", retries=1'
        replicas_kit.install(
            site,
            "bench",
            {f"j{i}": (decorator.format(i=i), sleep) for i in range(jobs)},
        )
    return site


def _start(
    root: Path, url: str, site: Path, count: int, fake: bool, workers: int
) -> list[BenchReplica]:
    config = (
        f'database_url = "{url}"\nworkers = {workers}\nlease = "{LEASE_S}s"\n'
        f'plugin_paths = ["{site}"]\n'
    )
    started = [BenchReplica(root, f"r{count}-{i}", config, fake=fake) for i in range(count)]
    for replica in started:
        replica.start()
    deadline = time.monotonic() + 120
    while not all("started" in {e["event"] for e in r.events()} for r in started):
        if time.monotonic() > deadline:
            raise RuntimeError("replicas did not start within 120 s; see their serve.log")
        time.sleep(0.2)
    return started


def _db_now(url: str) -> datetime:
    with SqlRunStore(url) as store, store.engine.connect() as conn:
        value: datetime = conn.exec_driver_sql("SELECT now()").scalar_one()
    return value.astimezone(UTC)


def measure(
    cluster: object, root: Path, count: int, args: argparse.Namespace, fake: bool
) -> dict[str, float]:
    url = cluster.create_database(f"ha_{'f' if fake else 's'}{count}")  # type: ignore[attr-defined]
    site = _site(root, args.jobs, 0.0)
    started = _start(root, url, site, count, fake, args.workers)
    try:
        time.sleep(3)  # warm-up: discovery caches, first claims
        begin = _db_now(url)
        time.sleep(args.seconds)
        end = _db_now(url)
        time.sleep(2)  # let the window's last fires start
    finally:
        for replica in started:
            replica.stop()
    with SqlRunStore(url) as store:
        runs = store.list(limit=1_000_000)
    firsts = [r for r in runs if r.attempt == 1 and r.trigger == "schedule"]
    counts = Counter((r.job, r.scheduled_at) for r in firsts)
    window = [r for r in firsts if begin <= r.scheduled_at < end]
    seconds = int((end - begin).total_seconds())
    first_second = begin.replace(microsecond=0) + timedelta(seconds=1)
    expected = {
        (f"bench:j{i}", first_second + timedelta(seconds=s))
        for i in range(args.jobs)
        for s in range(seconds - 1)
    }
    present = {(r.job, r.scheduled_at) for r in window}
    lags = sorted(
        (r.started_at - r.scheduled_at).total_seconds() * 1000
        for r in window
        if r.started_at is not None
    )
    p99 = lags[max(0, int(len(lags) * 0.99) - 1)] if lags else float("nan")
    ran = [r for r in window if r.started_at is not None]
    return {
        "fires_per_s": round(len(ran) / max(1, seconds), 1),
        "claim_p99_ms": round(p99, 1),
        "duplicates": sum(1 for n in counts.values() if n > 1),
        "missing": len(expected - present),
    }


def failover(cluster: object, root: Path, fake: bool, workers: int) -> float:
    url = cluster.create_database(f"ha_failover_{'f' if fake else 's'}")  # type: ignore[attr-defined]
    site = _site(root, 2, 4.0)
    pair = _start(root, url, site, 2, fake, workers)
    try:
        victim = pair[0]
        deadline = time.monotonic() + 60
        while True:
            with SqlRunStore(url) as store:
                running = [r for r in store.running() if r.host_id == victim.name]
            if any(r.status == "running" for r in running):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the victim never ran anything")
            time.sleep(0.1)
        killed_at = _db_now(url)
        victim.kill()
        cut = {r.run_id for r in running if r.status == "running"}
        deadline = time.monotonic() + 60
        while True:
            with SqlRunStore(url) as store:
                done = [store.get(run_id) for run_id in cut]
            if all(r.status == "interrupted" for r in done):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the victim's runs were never taken over")
            time.sleep(0.1)
    finally:
        for replica in pair:
            replica.stop()
    taken = max(r.finished_at for r in done if r.finished_at is not None)
    return round((taken - killed_at).total_seconds(), 2)


def bench(cluster: object, root: Path, args: argparse.Namespace, fake: bool) -> dict[str, object]:
    counts = [1, 2, 3]
    rows = {n: measure(cluster, root, n, args, fake) for n in counts}
    return {
        "mode": "fake" if fake else "sandbox",
        "jobs_per_s_due": args.jobs,
        "replicas": counts,
        "fires_per_s": {str(n): rows[n]["fires_per_s"] for n in counts},
        "claim_p99_ms": {str(n): rows[n]["claim_p99_ms"] for n in counts},
        "duplicates": sum(int(rows[n]["duplicates"]) for n in counts),
        "missing": sum(int(rows[n]["missing"]) for n in counts),
        "failover_s": failover(cluster, root, fake, args.workers),
        "lease_s": LEASE_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fake", "sandbox", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=60, help="jobs due every second")
    parser.add_argument("--seconds", type=int, default=15, help="steady window per measurement")
    parser.add_argument("--workers", type=int, default=8, help="workers per replica")
    args = parser.parse_args()
    modes = {"fake": [True], "sandbox": [False], "both": [True, False]}[args.mode]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, pg_cluster.running_cluster() as cluster:
        results = [bench(cluster, Path(tmp), args, fake) for fake in modes]
        for result in results:
            print(json.dumps(result))
        print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
