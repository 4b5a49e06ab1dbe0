"""The scheduler at scale: start-up, memory, and fire lateness with 10,000 and 100,000 cron jobs.

Run: ``.venv/bin/python tests/benchmarks/bench_scheduler.py``. Each size runs in its own fresh
process (so RSS is that size's alone) and the parent prints one JSON object:
``{"sizes": [{"jobs", "startup_s", "rss_mb", "lateness_p50_ms", "lateness_p99_ms", ...}, ...]}``.

- ``startup_s``: turning the manifests' ``JobSpec``s into scheduled jobs (``ScheduledJob.from_spec``,
  schedules parsed and zones resolved) plus ``Plan.load`` — what ``plugbox serve`` does before its
  first fire, excluding plugin discovery;
- ``rss_mb``: the process's resident memory after loading;
- lateness: 200 of the jobs are set to fire in the same second; the loop ``plugbox serve`` runs
  (sleep until ``next_wakeup``, then ``due()``) dispatches them, and lateness is dispatch time
  minus each fire's due time, in ms (the scheduler's own delay; no sandbox run is started);
- ``cpu_ms_per_sim_minute``: the same jobs on a fake clock stepped one second at a time through
  ``SIM_MINUTES`` simulated minutes, calling ``due()`` at each step as the serve loop would; the
  process CPU time spent, per simulated minute (``fires_per_sim_minute`` says how much firing
  that CPU bought).
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

SIZES = (10_000, 100_000)
BURST = 200
SIM_MINUTES = 10
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


def _expressions(rng: random.Random) -> list[str]:
    exprs = [
        "* * * * *",
        "*/5 * * * *",
        "*/15 * * * *",
        "0 * * * *",
        "@hourly",
        "@daily",
        "0 9 * * 1-5",
    ]
    exprs += [f"{rng.randrange(60)} {rng.randrange(24)} * * *" for _ in range(300)]
    exprs += [f"{rng.randrange(60)} */{rng.choice((2, 3, 4, 6))} * * *" for _ in range(100)]
    exprs += [f"*/{rng.choice((10, 15, 30))} * * * * *" for _ in range(5)]
    return exprs


def run_size(size: int) -> dict[str, float]:
    import psutil

    from plugbox.host.scheduler import FakeClock, Plan, ScheduledJob, SystemClock
    from plugbox.sdk import JobSpec

    rng = random.Random(size)
    exprs = _expressions(rng)
    burst_at = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    burst_expr = f"{burst_at.second} {burst_at.minute} {burst_at.hour} * * *"
    specs = []
    for n in range(size):
        expr = burst_expr if n < BURST else rng.choice(exprs)
        zone = "UTC" if n < BURST else rng.choice(ZONES)
        specs.append(
            JobSpec(
                id=f"job-{n}",
                handler="bench:job",
                schedule=expr,
                timezone=zone,
                priority=rng.randrange(11),
            )
        )

    start = time.perf_counter()
    jobs = [ScheduledJob.from_spec(f"p{n % 50}", spec) for n, spec in enumerate(specs)]
    plan = Plan(SystemClock())
    plan.load(jobs, last_fire=lambda _key: None, paused=set(), starting=True)
    startup = time.perf_counter() - start
    rss_mb = psutil.Process().memory_info().rss / 2**20

    burst_keys = {f"p{n % 50}:job-{n}" for n in range(BURST)}
    lateness: list[float] = []
    deadline = time.monotonic() + 15
    while len(lateness) < BURST and time.monotonic() < deadline:
        wakeup = plan.next_wakeup()
        now = datetime.now(UTC)
        if wakeup is not None and wakeup > now:
            time.sleep(min(1.0, (wakeup - now).total_seconds()))
        fires = plan.due()
        dispatched = datetime.now(UTC)
        lateness += [
            (dispatched - f.due_at) / timedelta(milliseconds=1)
            for f in fires
            if f.job in burst_keys
        ]
    ordered = sorted(lateness)

    del plan
    clock = FakeClock(datetime(2026, 3, 27, 23, 55, tzinfo=UTC))  # spans a DST change in Berlin
    simulated = Plan(clock)
    simulated.load(jobs, last_fire=lambda _key: None, paused=set(), starting=False)
    fired = 0
    cpu_start = time.process_time()
    for _ in range(SIM_MINUTES * 60):
        clock.advance(timedelta(seconds=1))
        fired += len(simulated.due())
    cpu_ms = (time.process_time() - cpu_start) * 1000
    return {
        "jobs": size,
        "startup_s": round(startup, 3),
        "rss_mb": round(rss_mb, 1),
        "lateness_p50_ms": round(statistics.median(ordered), 3),
        "lateness_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "burst_fires_seen": len(ordered),
        "cpu_ms_per_sim_minute": round(cpu_ms / SIM_MINUTES, 1),
        "fires_per_sim_minute": round(fired / SIM_MINUTES),
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--size":
        print(json.dumps(run_size(int(sys.argv[2]))))
        return 0
    sizes = []
    for size in SIZES:
        out = subprocess.run(
            [sys.executable, __file__, "--size", str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        sizes.append(json.loads(out.stdout))
    print(json.dumps({"sizes": sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
