"""How long the ``plugbox`` script takes to answer, against a bare Python start.

Run: ``.venv/bin/python tests/benchmarks/bench_cli.py [--repeat N]``. It prints progress on
stderr and one JSON object last on stdout, every figure the median of ``--repeat`` (default 7)
wall-clock runs of the installed script, in ms:

- ``python_startup_ms``: ``python -c pass`` with this interpreter, the floor for any command;
- ``help_ms``: ``plugbox --help``;
- ``runs_list_ms``: ``plugbox runs list`` with 10,000 runs stored (SQLite, the default store);
- ``jobs_list_ms``: ``plugbox jobs list``, warm (the installed plugins were seen before);
- ``jobs_list_hanging_plugin_ms``: the same with a plugin installed whose import never ends
  (a tiny dist in a ``plugin_paths`` target, as ``pip install --target`` lays it out), warm;
- ``*_x_startup``: each of those divided by ``python_startup_ms``. Targets (issue 10): help and
  runs list at most 8x, jobs list with the hanging plugin at most 15x.
- ``*_cpu_ms`` and ``*_cpu_x_startup``: the same in CPU time (user + system), which a machine
  busy with other work inflates far less than wall-clock time.

The machine's load shows in every wall-clock figure (``load_1min`` is printed), CPU time less. Only the script and the store are
used, never modules of the CLI itself, so the same file measures an older tree too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

RUNS_STORED = 10_000
HANGING_PLUGIN = """
import time

time.sleep(3600)
"""


def plugbox_path() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    if not found:
        sys.exit("the plugbox console script is not installed next to this interpreter")
    return found


def medians_ms(
    command: list[str], *, repeat: int, cwd: Path, timeout: float = 300
) -> tuple[float, float]:
    """Median wall-clock and median CPU (user + system, the command and what it waited for)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        out = subprocess.run(command, capture_output=True, env=env, cwd=cwd, timeout=timeout)
        walls.append((time.perf_counter() - began) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
        if out.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{out.stderr.decode(errors='replace')}")
    return round(statistics.median(walls), 1), round(statistics.median(cpus), 1)


def make_host(root: Path, name: str, plugin_paths: tuple[Path, ...] = ()) -> Path:
    home = root / name
    (home / "workspace").mkdir(parents=True)
    config = home / "plugbox.toml"
    paths = ", ".join(f'"{path}"' for path in plugin_paths)
    config.write_text(
        f'state_dir = "{home / "state"}"\nworkspace = "{home / "workspace"}"\n'
        f"plugin_paths = [{paths}]\n"
    )
    return config


def store_runs(config: Path, count: int) -> None:
    from plugbox.host.store import RunRecord, SqlRunStore

    state = config.parent / "state"
    state.mkdir(mode=0o700)
    store = SqlRunStore(f"sqlite:///{state / 'plugbox.db'}")
    start = datetime.now(UTC) - timedelta(days=30)
    try:
        for n in range(count):
            at = start + timedelta(minutes=n)
            store.add(
                RunRecord(
                    run_id=f"bench{n:08d}",
                    job=f"example:{('hello-cron', 'cleanup', 'rate-limit')[n % 3]}",
                    status="success" if n % 7 else "failed",
                    scheduled_at=at,
                    started_at=at,
                    finished_at=at + timedelta(milliseconds=40),
                    duration_ms=40,
                    result={"ok": True, "run": n},
                )
            )
    finally:
        store.close()


def install_hanging_plugin(site: Path) -> None:
    """``plugbox-bench-hangs`` 1.0 as pip lays it out: module, dist-info, RECORD."""
    site.mkdir()
    (site / "bench_hangs.py").write_text(HANGING_PLUGIN)
    info = site / "plugbox_bench_hangs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: plugbox-bench-hangs\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[plugbox]\nhangs = bench_hangs\n")
    names = ["bench_hangs.py", *(f"{info.name}/{f.name}" for f in info.iterdir())]
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure (median)")
    repeat = parser.parse_args().repeat
    plugbox = plugbox_path()
    root = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    root.chmod(0o755)  # a root host's discovery children run as another uid and must read it
    try:
        base = make_host(root, "base")
        print(f"storing {RUNS_STORED:,} runs…", file=sys.stderr)
        store_runs(base, RUNS_STORED)
        install_hanging_plugin(root / "site")
        hanging = make_host(root, "hanging", (root / "site",))

        figures: dict[str, float] = {}

        def measure(name: str, command: list[str]) -> None:
            wall, cpu = medians_ms(command, repeat=repeat, cwd=root)
            figures[f"{name}_ms"], figures[f"{name}_cpu_ms"] = wall, cpu

        measure("python_startup", [sys.executable, "-c", "pass"])
        measure("help", [plugbox, "--config", str(base), "--help"])
        measure("runs_list", [plugbox, "--config", str(base), "runs", "list"])
        print("warming the plugin caches (a hanging plugin costs its timeout)…", file=sys.stderr)
        for config in (base, hanging):
            medians_ms([plugbox, "--config", str(config), "jobs", "list"], repeat=1, cwd=root)
        measure("jobs_list", [plugbox, "--config", str(base), "jobs", "list"])
        measure("jobs_list_hanging_plugin", [plugbox, "--config", str(hanging), "jobs", "list"])
        for name in ("help", "runs_list", "jobs_list", "jobs_list_hanging_plugin"):
            for unit in ("ms", "cpu_ms"):
                ratio = figures[f"{name}_{unit}"] / figures[f"python_startup_{unit}"]
                figures[f"{name}_{unit.removesuffix('ms')}x_startup"] = round(ratio, 1)
        figures["repeat"] = repeat
        figures["cpus"] = os.cpu_count() or 0
        figures["load_1min"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
