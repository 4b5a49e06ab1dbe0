"""What the admin page costs the host: each poll renders one fragment.

Run: ``.venv/bin/python tests/benchmarks/bench_admin_page.py``. Installs a synthetic plugin with
``JOBS`` jobs, stores ``RUNS`` finished runs in the host's SQLite, starts a real
``plugbox serve``, then asks each URL ``ROUNDS`` times in a row with a read token (one client, as
one open tab; the page polls every 2 s). Prints one JSON object: per URL ``{name}_p50_ms``,
``{name}_p99_ms`` and ``{name}_kb`` (the answer's size), with ``jobs_json`` (``GET /jobs``, the
JSON API's listing of the same jobs) as the yardstick for ``jobs_part`` (the jobs page's
fragment, which also lists the recent runs).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from plugbox.host.store import RunRecord
from plugbox.host.store.sql import SqlRunStore

JOBS = 200
RUNS = 2_000  # stored one by one through the store: 10,000 take minutes
ROUNDS = 100

PLUGIN = """
from plugbox.sdk import define_manifest, hookimpl, job


def _make(index):
    @job(f"job-{{index:04d}}", schedule=f"{{index % 60}} * * * *", description=f"synthetic job {{index}}")
    def run(ctx):
        return {{"index": index}}

    return run


manifest = define_manifest(
    id="bench", version="1.0", name="Bench", jobs=[_make(i) for i in range({jobs})]
)


@hookimpl
def plugbox_manifest():
    return manifest
"""


def plugbox() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found, "run with the workspace's .venv/bin/python"
    return found


def setup(root: Path) -> Path:
    site = root / "site"
    info = site / "pbt_bench-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbt-bench\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\nbench = pbt_bench\n")
    (site / "pbt_bench.py").write_text(PLUGIN.format(jobs=JOBS))
    (root / "ws").mkdir()
    (root / "state").mkdir()
    config = root / "plugbox.toml"
    config.write_text(
        f'plugin_paths = ["{site}"]\nstate_dir = "{root / "state"}"\nworkspace = "{root / "ws"}"\n'
    )
    store = SqlRunStore(f"sqlite:///{root / 'state' / 'plugbox.db'}")
    start = datetime.now(UTC) - timedelta(days=7)
    for n in range(RUNS):
        at = start + timedelta(seconds=60 * n)
        store.add(
            RunRecord(
                run_id=f"{n:032x}",
                job=f"bench:job-{n % JOBS:04d}",
                status="success" if n % 10 else "failed",
                scheduled_at=at,
                started_at=at,
                finished_at=at + timedelta(milliseconds=40),
                duration_ms=40,
                peak_memory_mb=3.5,
                cpu_ms=12,
            )
        )
    store.close()
    return config


def timed(client: httpx.Client, url: str) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(ROUNDS):
        began = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text
        size = len(answer.content)
    return sorted(times), size


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-admin-"))
    config = setup(root)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    command = [plugbox(), "--config", str(config)]
    token = subprocess.run(
        [*command, "tokens", "create", "bench", "--scopes", "read"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    serve = subprocess.Popen(
        [*command, "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        address = None
        for line in serve.stderr:
            if line.startswith("{") and json.loads(line).get("event") == "http_listening":
                address = json.loads(line)["address"]
                break
        assert address, "serve did not start"
        urls = {
            "jobs_json": "/jobs",
            "jobs_part": "/ui/part/jobs",
            "job_part": "/ui/part/jobs/bench:job-0007",
            "run_part": f"/ui/part/runs/{RUNS - 1:032x}",
            "plugins_part": "/ui/part/plugins",
        }
        figures: dict[str, float | int] = {"jobs": JOBS, "runs": RUNS, "rounds": ROUNDS}
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://{address}", headers=headers, timeout=60) as client:
            for name, url in urls.items():
                client.get(url)  # warm: first-use imports and caches
                times, size = timed(client, url)
                figures[f"{name}_p50_ms"] = round(statistics.median(times), 1)
                figures[f"{name}_p99_ms"] = round(times[int(len(times) * 0.99) - 1], 1)
                figures[f"{name}_kb"] = round(size / 1024, 1)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
