"""Trigger -> outcome latency and throughput of a trivial job, four ways, in one run.

Run: ``.venv/bin/python tests/benchmarks/bench_run_overhead.py [--runs 200]``. Prints one JSON
object: ``plugbox_p50_ms``/``plugbox_p99_ms`` (SandboxRunner, every available layer on),
``floor_p50_ms`` (a pre-imported process doing ``os.fork`` + pipe + ``waitpid``), ``naive_p50_ms``
(a fresh ``python`` per run that imports the SDK and runs the job), ``apscheduler_p50_ms``
(APScheduler 3 running the function in-process, no isolation), and ``plugbox_runs_per_s`` /
``floor_runs_per_s`` with two concurrent requesters.

Latency is trigger -> outcome for one trigger at a time, with ``GAP_S`` of idle time between
triggers (as a scheduler fires them), the same for every contender; back-to-back runs measure
throughput, reported separately (``*_runs_per_s``, ``plugbox_back_to_back_p50_ms``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner
from plugbox.sandbox.limits.cgroup_probe import favors_dynamic_moves
from plugbox.sdk import permissions as perms

JOB_DIR = Path(__file__).parent / "jobs"
NAIVE_SCRIPT = (
    "import sys; sys.path.insert(0, sys.argv[1]); import plugbox.sdk, json; "
    "from bench_jobs import trivial; print(json.dumps(trivial(None)))"
)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


GAP_S = 0.01


def timed(call: Callable[[], object], runs: int, gap: float = GAP_S) -> list[float]:
    samples = []
    for _ in range(runs):
        if gap:
            time.sleep(gap)
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def throughput(call: Callable[[], object], runs: int, workers: int = 2) -> float:
    per_worker = runs // workers

    def work() -> None:
        for _ in range(per_worker):
            call()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_worker * workers / (time.perf_counter() - start)


def floor_run() -> dict[str, bool]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, json.dumps({"ok": True}).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 1024)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)  # type: ignore[no-any-return]


def apscheduler_latency(runs: int) -> list[float]:
    from apscheduler.events import EVENT_JOB_EXECUTED
    from apscheduler.schedulers.background import BackgroundScheduler

    sys.path.insert(0, str(JOB_DIR))
    from bench_jobs import trivial

    done = threading.Event()
    scheduler = BackgroundScheduler()
    scheduler.add_listener(lambda _event: done.set(), EVENT_JOB_EXECUTED)
    scheduler.start()
    samples = []
    try:
        for _ in range(runs):
            time.sleep(GAP_S)
            done.clear()
            start = time.perf_counter()
            scheduler.add_job(trivial, args=[None])
            done.wait(10)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        scheduler.shutdown()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    runs = args.runs
    # pip compiles an installed plugin's modules at install time; the job module here is not
    # installed, and the run uid may not write its __pycache__, so compile it once the same way
    # (every contender imports the same module).
    compileall.compile_dir(JOB_DIR, quiet=1)
    with tempfile.TemporaryDirectory() as workspace, SandboxRunner() as runner:
        request = RunRequest(
            handler="bench_jobs:trivial",
            workspace=workspace,
            context=RunContext(job_id="trivial", plugin_id="bench", plugin_version="0", run_id=""),
            permissions=perms.presets.plugin_workspace("bench"),
            python_path=(str(JOB_DIR),),
        )

        def plugbox_run() -> None:
            outcome = runner.run(request)
            assert outcome.status == "success", outcome.error

        timed(plugbox_run, 20)  # warm up the zygote and the ruleset cache
        plugbox = timed(plugbox_run, runs)
        back_to_back = timed(plugbox_run, runs, gap=0)
        plugbox_tp = throughput(plugbox_run, runs)
        machine = runner.machine
    timed(floor_run, 20)
    floor = timed(floor_run, runs)
    floor_tp = throughput(floor_run, runs)
    naive_runs = max(10, runs // 10)
    naive = timed(
        lambda: subprocess.run(
            [sys.executable, "-c", NAIVE_SCRIPT, str(JOB_DIR)], check=True, capture_output=True
        ),
        naive_runs,
    )
    aps = apscheduler_latency(runs)
    figures = {
        "runs": runs,
        "plugbox_p50_ms": round(statistics.median(plugbox), 3),
        "plugbox_p99_ms": round(percentile(plugbox, 0.99), 3),
        "plugbox_back_to_back_p50_ms": round(statistics.median(back_to_back), 3),
        "floor_p50_ms": round(statistics.median(floor), 3),
        "floor_p99_ms": round(percentile(floor, 0.99), 3),
        "naive_p50_ms": round(statistics.median(naive), 3),
        "apscheduler_p50_ms": round(statistics.median(aps), 3),
        "plugbox_runs_per_s": round(plugbox_tp, 1),
        "floor_runs_per_s": round(floor_tp, 1),
        "naive_runs": naive_runs,
        "gap_between_triggers_ms": GAP_S * 1000,
        "layers": machine,
        "cgroup_favordynmods": favors_dynamic_moves(),
    }
    figures["plugbox_over_floor"] = round(figures["plugbox_p50_ms"] / figures["floor_p50_ms"], 2)
    figures["naive_over_plugbox"] = round(figures["naive_p50_ms"] / figures["plugbox_p50_ms"], 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
