"""``plugbox serve`` as replicas: fires as rows, decided at start, each once, taken over on death.

Real ``plugbox serve`` processes running real sandboxed jobs, on SQLite for the single host and on
the session's real PostgreSQL for several replicas. Tests wait on conditions with generous bounds;
the few fixed waits are the scenario itself (a replica dead for 20 s), never a race with a timer.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from plugbox.host.store import RunRecord, SqlRunStore
from plugbox.sdk.fencing import FencingToken

PLUGIN = """
import time

from plugbox.sdk import define_manifest, hookimpl, job

{jobs}

manifest = define_manifest(id="{id}", version="1.0", name="{id}", jobs=[{names}])


@hookimpl
def plugbox_manifest():
    return manifest
"""


def install(site: Path, plugin_id: str, jobs: dict[str, tuple[str, float]]) -> None:
    """An installed-looking distribution ``pbt_<id>``: each job (decorator arguments, seconds
    it sleeps) returns its fencing token."""
    module = f"pbt_{plugin_id}"
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[plugbox]\n{plugin_id} = {module}\n")
    source = "\n\n".join(
        f"@job({decorator})\ndef {name}(ctx):\n"
        f"    time.sleep({sleep})\n    return {{'token': str(ctx.fencing_token)}}\n"
        for name, (decorator, sleep) in jobs.items()
    )
    names = ", ".join(jobs)
    (site / f"{module}.py").write_text(PLUGIN.format(jobs=source, id=plugin_id, names=names))


def plugbox() -> str:
    return str(Path(sys.executable).parent / "plugbox")


class Replica:
    """One ``plugbox serve`` with its own state directory and host id, on a shared database."""

    def __init__(self, root: Path, name: str, config: str, clock_offset_s: float = 0.0) -> None:
        self.name = name
        self.dir = root / name
        (self.dir / "ws").mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "plugbox.toml"
        self.config.write_text(
            f'state_dir = "{self.dir / "state"}"\nworkspace = "{self.dir / "ws"}"\n'
            f'host_id = "{name}"\n{config}'
        )
        self.offset = clock_offset_s
        self.process: subprocess.Popen[str] | None = None
        self.log = self.dir / "serve.log"

    def start(self) -> None:
        argv = [plugbox(), "--config", str(self.config), "serve", "--no-http"]
        if self.offset:
            # The scheduler's clock seam: this replica's plan runs on a skewed clock.
            argv = [sys.executable, "-c", SKEWED.format(offset=self.offset), *argv[1:]]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.dir)}
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env
            )

    def kill(self) -> None:
        assert self.process is not None
        family = psutil.Process(self.process.pid).children(recursive=True)
        self.process.kill()
        self.process.wait(timeout=10)
        psutil.wait_procs(family, timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]


SKEWED = """
import sys
from datetime import timedelta
import plugbox.host.daemon as daemon
from plugbox.host.scheduler import OffsetClock
daemon.SystemClock = lambda: OffsetClock(timedelta(seconds={offset}))
from plugbox.host.cli import main
sys.argv[0] = "plugbox"
sys.exit(main())
"""


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"not in {timeout} s: {what or condition}")


def history(url: str, job: str | None = None) -> list[RunRecord]:
    with SqlRunStore(url) as store:
        return store.list(job=job, limit=100_000)


def overlaps(records: list[RunRecord]) -> list[tuple[str, str]]:
    spans = sorted(
        (r.started_at, r.finished_at, r.run_id)
        for r in records
        if r.started_at is not None and r.finished_at is not None
    )
    return [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]


def test_one_host_records_every_waiting_fire_and_decides_at_start(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    site = tmp_path / "site"
    # The greedy plugin's job fills both workers; the other's fires must wait for one.
    install(site, "hog", {"gobble": ('"gobble", priority=10, concurrency="allow"', 8)})
    install(site, "tidy", {"sweep": ('"sweep", concurrency="forbid"', 3)})
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    host = Replica(
        tmp_path,
        "solo",
        f'database_url = "{url}"\nworkers = 2\nplugin_paths = ["{site}"]\n'
        '[jobs."hog:gobble"]\nschedule = "* * * * * *"\n'
        '[jobs."tidy:sweep"]\nschedule = "*/2 * * * * *"\n',
    )
    replicas.append(host)
    host.start()

    def waiting() -> list[RunRecord]:
        return [r for r in history(url, "tidy:sweep") if r.status == "queued"]

    # Both workers are the hog's: tidy's fires wait, and each one waiting is a stored row.
    wait_for(lambda: len(waiting()) >= 3, what="three of tidy's fires waiting as rows")
    paused = subprocess.run(
        [plugbox(), "--config", str(host.config), "jobs", "pause", "hog:gobble"],
        capture_output=True,
        text=True,
    )
    assert paused.returncode == 0, paused.stderr
    wait_for(
        lambda: sum(r.status == "success" for r in history(url, "tidy:sweep")) >= 2,
        timeout=90,
        what="tidy runs again once the hog's runs end",
    )
    host.stop()
    runs = history(url, "tidy:sweep")
    instants = [r.scheduled_at for r in runs if r.trigger == "schedule"]
    assert len(instants) == len(set(instants))  # each fire recorded once
    assert all(r.status not in ("queued", "running") for r in runs)
    succeeded = [r for r in runs if r.status == "success"]
    assert overlaps(succeeded) == []  # forbid held at start, not just at enqueue
    missed = [r for r in runs if r.status == "skipped" and "misfire=run_once" in (r.reason or "")]
    assert missed, "fires that waited past their successor are dropped by the misfire policy"
    # Of the fires that waited together, only the newest ran: no burst of stale fires.
    first_free = min(r.started_at for r in succeeded if r.started_at)  # type: ignore[type-var]
    stale = [
        r
        for r in succeeded
        if r.started_at and r.started_at - r.scheduled_at > timedelta(seconds=2)
    ]
    assert len(stale) <= 1, [(r.scheduled_at, r.started_at) for r in stale]
    assert first_free is not None
    # Each run's context carried its fencing token: the fire, attempt 1, the first lease.
    for run in succeeded:
        token = FencingToken(job=run.job, scheduled_at=run.scheduled_at, attempt=1, epoch=1)
        assert run.result == {"token": str(token)}
