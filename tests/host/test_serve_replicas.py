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
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
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
            f'host_id = "{name}"\nshutdown_grace = "2s"\n{config}'
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


def db_now(url: str) -> datetime:
    """The database's clock, as the replicas read it."""
    with SqlRunStore(url) as store, store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT now()").scalar_one()  # type: ignore[no-any-return]


def until(moment: float) -> None:
    """Wait for a point of the scenario's own timeline (not for a condition)."""
    time.sleep(max(0.0, moment - time.monotonic()))


def pg_replicas(
    root: Path, url: str, site: Path, names: str, extra: str = "", **offsets: float
) -> list[Replica]:
    config = f'database_url = "{url}"\nworkers = 2\nlease = "3s"\nplugin_paths = ["{site}"]\n'
    return [Replica(root, name, config + extra, offsets.get(name, 0.0)) for name in names]


@pytest.mark.slow
def test_three_replicas_fire_each_second_once_and_take_over_a_killed_ones_run(
    tmp_path: Path, replicas: list[Replica], pg_url: str
) -> None:
    site = tmp_path / "site"
    tock = '"tock", schedule="* * * * * *", concurrency="allow", retries=1, retry_delay="500ms"'
    install(site, "tick", {"tock": (tock, 2.5)})
    replicas.extend(pg_replicas(tmp_path, pg_url, site, "abc"))
    b = replicas[1]
    begin = time.monotonic()
    for replica in replicas:
        replica.start()
    until(begin + 20)
    cut = wait_for(
        lambda: [r for r in history(pg_url) if r.host_id == "b" and r.status == "running"],
        what="replica b running a run when it is killed",
    )
    b.kill()  # SIGKILL: b renews nothing from here on
    killed_at = db_now(pg_url)
    until(begin + 40)
    b.start()
    restarted_at = db_now(pg_url)
    until(begin + 60)
    for replica in replicas:
        replica.stop()

    runs = history(pg_url, "tick:tock")
    firsts = [r.scheduled_at for r in runs if r.attempt == 1]
    assert [at for at, n in Counter(firsts).items() if n > 1] == []  # none duplicated
    span = int((max(firsts) - min(firsts)).total_seconds()) + 1
    assert sorted(set(firsts)) == [min(firsts) + timedelta(seconds=i) for i in range(span)]
    # ...from before the kill to well after the restart: none missing through either.
    assert min(firsts) < killed_at - timedelta(seconds=5)
    assert max(firsts) > restarted_at + timedelta(seconds=10)
    by_id = {r.run_id: r for r in runs}
    for lost in cut:
        after = by_id[lost.run_id]
        assert after.status == "interrupted", after
        assert "lease" in (after.reason or "")
        (retry,) = [r for r in runs if r.first_run_id == lost.run_id and r.attempt == 2]
        assert retry.trigger == "retry" and retry.host_id in ("a", "c", "b")
        assert retry.status == "success"
        token = FencingToken(job=retry.job, scheduled_at=lost.scheduled_at, attempt=2, epoch=1)
        assert retry.result == {"token": str(token)}
    assert {r.host_id for r in runs if r.status == "success"} == {"a", "b", "c"}


def test_a_saturated_replica_leaves_manual_triggers_to_the_others(
    tmp_path: Path, replicas: list[Replica], pg_url: str
) -> None:
    busy_site, site = tmp_path / "busy-site", tmp_path / "site"
    install(busy_site, "hog", {"hold": ('"hold", run_on_startup=True', 120)})
    for path in (busy_site, site):
        install(path, "work", {"quick": ('"quick", concurrency="allow"', 0.5)})
    base = f'database_url = "{pg_url}"\nlease = "3s"\n'
    full = Replica(tmp_path, "full", base + f'workers = 1\nplugin_paths = ["{busy_site}"]\n')
    others = [
        Replica(tmp_path, name, base + f'workers = 2\nplugin_paths = ["{site}"]\n')
        for name in ("free1", "free2")
    ]
    replicas.extend([full, *others])
    full.start()
    wait_for(
        lambda: any(r.status == "running" for r in history(pg_url, "hog:hold")),
        what="the only worker of `full` busy",
    )
    for replica in others:
        replica.start()
    wait_for(lambda: all("started" in {e["event"] for e in r.events()} for r in others))
    asked = []
    for _ in range(6):  # through the saturated replica's own configuration
        out = subprocess.run(
            [plugbox(), "--config", str(full.config), "jobs", "trigger", "work:quick", "--json"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(full.dir)},
        )
        assert out.returncode == 0, out.stderr
        asked.append(json.loads(out.stdout)["run_id"])

    def done() -> list[RunRecord]:
        found = {r.run_id: r for r in history(pg_url, "work:quick")}
        return [found[i] for i in asked if i in found and found[i].status == "success"]

    finished = wait_for(lambda: len(done()) == 6 and done(), what="every trigger run")
    assert {r.host_id for r in finished} <= {"free1", "free2"}
    assert all(r.trigger == "manual" for r in finished)


def test_a_replica_whose_clock_is_30_s_ahead_fires_nothing_early_or_twice(
    tmp_path: Path, replicas: list[Replica], pg_url: str
) -> None:
    site = tmp_path / "site"
    install(site, "tick", {"tock": ('"tock", schedule="* * * * * *", concurrency="allow"', 0.2)})
    replicas.extend(pg_replicas(tmp_path, pg_url, site, "abc", c=30.0))
    for replica in replicas:
        replica.start()
    skewed = replicas[2]
    wait_for(
        lambda: len([e for e in skewed.events() if e["event"] == "queued"]) >= 10,
        what="the skewed replica queueing fires",
    )
    ahead = [
        datetime.fromisoformat(e["scheduled_at"]) - datetime.fromisoformat(e["at"])
        for e in skewed.events()
        if e["event"] == "queued"
    ]
    assert max(ahead) > timedelta(seconds=25)  # it really did see the future
    wait_for(lambda: len(history(pg_url, "tick:tock")) >= 35, what="fires after the skew")
    for replica in replicas:
        replica.stop()
    runs = [r for r in history(pg_url, "tick:tock") if r.attempt == 1]
    counts = Counter(r.scheduled_at for r in runs)
    assert [at for at, n in counts.items() if n > 1] == []
    started = [r for r in runs if r.started_at is not None]
    assert started
    early = [r for r in started if r.started_at < r.scheduled_at]  # type: ignore[operator]
    assert early == []  # the database's clock decides when a fire is due


def test_a_pause_and_a_reload_through_one_replica_reach_the_other_within_a_second(
    tmp_path: Path, replicas: list[Replica], pg_url: str
) -> None:
    site = tmp_path / "site"
    install(site, "tick", {"tock": ('"tock", schedule="* * * * * *", concurrency="allow"', 0.1)})
    replicas.extend(pg_replicas(tmp_path, pg_url, site, "ab"))
    a, b = replicas
    for replica in replicas:
        replica.start()
    wait_for(lambda: len(history(pg_url, "tick:tock")) >= 3, what="fires before the pause")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(a.dir)}

    def command(*args: str) -> datetime:
        out = subprocess.run(
            [plugbox(), "--config", str(a.config), *args], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        return db_now(pg_url)

    asked = command("jobs", "pause", "tick:tock")
    synced = wait_for(
        lambda: [e for e in b.events() if e["event"] == "synced" and e["paused"] == ["tick:tock"]],
        timeout=10,
        what="replica b hearing of the pause",
    )
    assert datetime.fromisoformat(synced[0]["at"]) - asked < timedelta(seconds=1)
    late = [
        r for r in history(pg_url, "tick:tock") if r.scheduled_at > asked + timedelta(seconds=1)
    ]
    assert late == []  # nobody queued a fire of the paused job
    asked = command("plugins", "reload")
    reloaded = wait_for(
        lambda: [e for e in b.events() if e["event"] == "reloaded"],
        timeout=10,
        what="replica b reloading",
    )
    assert datetime.fromisoformat(reloaded[0]["at"]) - asked < timedelta(seconds=1)


def test_a_run_is_cancelled_through_any_replica(
    tmp_path: Path, replicas: list[Replica], pg_url: str
) -> None:
    from tests.host.api.conftest import cli, start_serve

    busy_site, quiet_site = tmp_path / "busy-site", tmp_path / "quiet-site"
    install(busy_site, "hog", {"hold": ('"hold", run_on_startup=True', 120)})
    install(quiet_site, "tick", {"tock": ('"tock", schedule="@daily"', 0.1)})
    base = f'database_url = "{pg_url}"\nlease = "3s"\n'
    runner = Replica(tmp_path, "runner", base + f'plugin_paths = ["{busy_site}"]\n')
    replicas.append(runner)
    runner.start()
    held = wait_for(
        lambda: [r for r in history(pg_url, "hog:hold") if r.status == "running"],
        what="the run on replica `runner`",
    )[0]
    # The operator's replica: its own HTTP API and token, and it does not even load `hog`.
    front = Replica(tmp_path, "front", base + f'plugin_paths = ["{quiet_site}"]\n')
    token = cli(front.config, "tokens", "create", "ops", "--scopes", "admin").stdout.strip()
    served = start_serve(front.config)
    try:
        with served.client(token) as client:
            answer = client.post(f"/runs/{held.run_id}/cancel")
        assert answer.status_code == 202, answer.text  # accepted, as for a run of its own
        assert answer.json()["cancelled_by"] == "ops"  # asked; the runner's worker ends it
        ended = wait_for(
            lambda: [
                r
                for r in history(pg_url, "hog:hold")
                if r.run_id == held.run_id and r.status == "cancelled"
            ],
            timeout=20,
            what="the run cancelled by the replica running it",
        )[0]
    finally:
        assert served.stop() == 0, "".join(served.stderr)
    assert ended.host_id == "runner"
    assert ended.cancelled_by == "ops"
    assert ended.reason == "cancelled by ops through the HTTP API"
    asked = [e for e in served.events if e["event"] == "cancel_requested"]
    assert asked and asked[0]["host"] == "runner"
    assert any(e["event"] == "cancelling" for e in runner.events())
