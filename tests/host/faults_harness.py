"""What the fault tests share: a plugin whose first attempts take a while, a ``plugbox serve``
started as an operator would, a database on either backend, and the accounting of a history.

Loaded by path from the fault tests (tests/ is no package: ``--import-mode=importlib``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from plugbox.host.store import RunRecord, SqlRunStore

JOB = "faults:tick"
PLUGIN = """
import time

from plugbox.sdk import define_manifest, hookimpl, job


@job("tick", retries=1, retry_delay="1s", concurrency="allow", misfire="catch_up")
def tick(ctx):
    # A first attempt takes a while (the window the tests kill the host in); a retry is quick.
    if ctx.attempt == 1:
        time.sleep({hold})
    return {{"blob": "x" * {size}}}


manifest = define_manifest(id="faults", version="1.0", name="faults", jobs=[tick])


@hookimpl
def plugbox_manifest():
    return manifest
"""


def install(site: Path, *, hold: float = 2.5, size: int = 10) -> None:
    """An installed-looking distribution ``pbt_faults`` with the one job ``faults:tick``."""
    info = site / "pbt_faults-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbt_faults\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\nfaults = pbt_faults\n")
    (site / "pbt_faults.py").write_text(PLUGIN.format(hold=hold, size=size))


def plugbox() -> str:
    return str(Path(sys.executable).parent / "plugbox")


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"not in {timeout} s: {what or condition}")


class Serve:
    """One ``plugbox serve`` (host id ``solo``), restartable, its JSON lines in a log file."""

    def __init__(self, root: Path, url: str, config: str, *, http: bool = False) -> None:
        self.dir = root
        self.url = url
        (root / "ws").mkdir(parents=True, exist_ok=True)
        self.config = root / "plugbox.toml"
        self.config.write_text(
            f'database_url = "{url}"\nworkspace = "{root / "ws"}"\nhost_id = "solo"\n'
            f'state_dir = "{root / "state"}"\nshutdown_grace = "5s"\n{config}'
        )
        self.http = http
        self.process: subprocess.Popen[str] | None = None
        self.log = root / "serve.log"
        self.offset = 0  # lines of the log written before the current process started

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.offset = len(self.events())
        listen = ["--listen", "127.0.0.1:0"] if self.http else ["--no-http"]
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [plugbox(), "--config", str(self.config), "serve", *listen],
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                env={"PATH": "/usr/bin:/bin", "HOME": str(self.dir)},
            )
        wait_for(lambda: self.seen("started", since_start=True), what="serve started")

    def family(self) -> list[psutil.Process]:
        return psutil.Process(self.pid).children(recursive=True)

    def kill(self) -> None:
        """SIGKILL serve (its zygote and runs die with it: PR_SET_PDEATHSIG) and wait for all."""
        assert self.process is not None
        family = self.family()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        psutil.wait_procs(family, timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with_stopped = psutil.Process(self.pid).status() == psutil.STATUS_STOPPED
            if with_stopped:
                self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def seen(self, event: str, *, since_start: bool = False, **fields: Any) -> list[dict[str, Any]]:
        """The lines of ``event`` (with these fields); ``since_start``: of this process only."""
        lines = self.events()[self.offset if since_start else 0 :]
        return [
            line
            for line in lines
            if line["event"] == event and all(line.get(k) == v for k, v in fields.items())
        ]

    def http_url(self) -> str:
        line = wait_for(lambda: self.seen("http_listening"), what="serve listening")[-1]
        return f"http://{line['address']}"


def sleeping(pid: int) -> bool:
    """Whether a thread of ``pid`` sleeps in clock_nanosleep (or nanosleep)."""
    found = False
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError):
                found |= (task / "syscall").read_text().split()[0] in ("35", "230")
    return found


def run_child(serve: Serve) -> list[psutil.Process]:
    """The run's child, once the job runs: the ``plugbox-run`` in the job's ``time.sleep`` (a
    warm child waits on its control socket instead)."""

    def started() -> list[psutil.Process]:
        return [p for p in serve.family() if p.name() == "plugbox-run" and sleeping(p.pid)]

    return wait_for(started, timeout=30, what="the job's child sleeping in the job")


def history(url: str) -> list[RunRecord]:
    with SqlRunStore(url) as store:
        return store.list(job=JOB, limit=100_000)


def run_of(url: str, run_id: str) -> RunRecord:
    with SqlRunStore(url) as store:
        return store.get(run_id)


def accounted(runs: list[RunRecord]) -> dict[datetime, list[RunRecord]]:
    """Every scheduled fire once per attempt, none left running, every interrupted attempt
    retried: the history by fire key (job, scheduled instant, attempt). Returns it by instant."""
    keys = Counter((r.scheduled_at, r.attempt) for r in runs if r.trigger != "startup")
    duplicated = {key: n for key, n in keys.items() if n > 1}
    assert not duplicated, f"fires recorded twice: {duplicated}"
    assert not [r.run_id for r in runs if r.status == "running"], "a run left running"
    by_instant: dict[datetime, list[RunRecord]] = {}
    for record in runs:
        by_instant.setdefault(record.scheduled_at, []).append(record)
    for instant, attempts in by_instant.items():
        numbers = sorted(r.attempt for r in attempts)
        assert numbers == list(range(1, len(numbers) + 1)), f"{instant}: attempts {numbers}"
        for record in attempts:
            if record.status == "interrupted" and record.attempt == 1:
                assert record.reason, "an interrupted run says why"
                assert 2 in numbers, f"{instant}: interrupted, never retried"
    return by_instant
