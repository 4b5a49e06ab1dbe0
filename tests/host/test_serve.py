"""``plugbox serve`` as an operator runs it: a real host process firing the example plugin's job."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from plugbox.host.config import load_config
from plugbox.host.daemon import Daemon
from plugbox.host.services import Host


def plugbox_path() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found
    return found


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    path = tmp_path / "plugbox.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'workspace = "{tmp_path / "ws"}"\n'
        'shutdown_grace = "2s"\n\n'
        '[jobs."example:hello-cron"]\nschedule = "* * * * * *"\n'
    )
    return path


def serve(config: Path) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(config.parent)}
    return subprocess.Popen(
        [plugbox_path(), "--config", str(config), "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def runs(config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [plugbox_path(), "--config", str(config), "runs", "list", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["runs"]  # type: ignore[no-any-return]


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail("condition not met in time")


def stop(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]]]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return process.returncode, events


def test_serve_fires_on_schedule_and_stops_gracefully(config: Path) -> None:
    process = serve(config)
    try:
        wait_for(lambda: len([r for r in runs(config) if r["status"] == "success"]) >= 3)
    finally:
        code, events = stop(process)
    assert code == 0
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started"
    assert "fired" in kinds and "finished" in kinds
    # A run in flight when the signal came finishes within the grace and says so before the end.
    stopping = kinds.index("stopping")
    assert kinds[-1] == "stopped"
    assert set(kinds[stopping + 1 : -1]) <= {"finished"}, kinds[stopping:]
    recorded = runs(config)
    assert {r["trigger"] for r in recorded} == {"schedule"}
    fired = sorted(r["scheduled_at"] for r in recorded)
    assert len(set(fired)) == len(fired)  # each instant fired once
    log = (config.parent / "ws" / ".plugbox" / "example" / "cron.log").read_text().splitlines()
    assert log[:3] == ["run 1", "run 2", "run 3"]


def test_restart_after_downtime_runs_the_missed_fire_once(config: Path) -> None:
    process = serve(config)
    try:
        wait_for(lambda: len(runs(config)) >= 1)
    finally:
        stop(process)
    first_host = runs(config)
    before = len(first_host)
    last_before = max(datetime.fromisoformat(r["scheduled_at"]) for r in first_host)
    time.sleep(3)  # three fires missed while the host is down (misfire = run_once)
    process = serve(config)
    try:
        wait_for(lambda: len(runs(config)) >= before + 1)
        time.sleep(0.5)
    finally:
        code, events = stop(process)
    assert code == 0
    started = datetime.fromisoformat(next(e["at"] for e in events if e["event"] == "started"))
    fired = [e for e in events if e["event"] == "fired"]
    missed = [e for e in fired if datetime.fromisoformat(e["scheduled_at"]) < started]
    # Three fires fell in the downtime; run_once runs the latest of them once, not a burst.
    assert len(missed) == 1, missed
    assert missed[0]["trigger"] == "schedule"
    # The latest, not the first: at least three instants passed after the first host's last
    # fire (however long this host took to start, which a loaded machine stretches).
    assert datetime.fromisoformat(missed[0]["scheduled_at"]) - last_before >= timedelta(seconds=3)


SLOWPOKE = """
import time

from plugbox.sdk import define_manifest, hookimpl, job


@job("nap", run_on_startup=True, retries=1, timeout="120s", concurrency="allow")
def nap(ctx):
    ctx.logger.info("napping", attempt=ctx.attempt)
    time.sleep(60)
    return {"slept": True}


manifest = define_manifest(id="slowpoke", version="1.0", name="Slowpoke", jobs=[nap])


@hookimpl
def plugbox_manifest():
    return manifest
"""


def install_slowpoke(site: Path) -> None:
    """An installed-looking distribution: dist-info with the entry point, beside its module."""
    info = site / "pbt_slowpoke-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbt-slowpoke\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\nslowpoke = pbt_slowpoke\n")
    (site / "pbt_slowpoke.py").write_text(SLOWPOKE)


def test_sigkill_mid_run_leaves_an_interrupted_run_that_is_retried(config: Path) -> None:
    site = config.parent / "site"
    install_slowpoke(site)
    config.write_text(
        config.read_text().replace(
            'shutdown_grace = "2s"', f'shutdown_grace = "1s"\nplugin_paths = ["{site}"]'
        )
    )

    def slowpoke_runs() -> list[dict[str, Any]]:
        return [r for r in runs(config) if r["job"] == "slowpoke:nap"]

    process = serve(config)
    wait_for(lambda: any(r["status"] == "running" for r in slowpoke_runs()))
    family = psutil.Process(process.pid).children(recursive=True)
    assert family, "the host should have a zygote and a run child"
    process.kill()  # SIGKILL: no chance to clean up
    process.communicate(timeout=10)
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"processes outlived their killed host: {alive}"

    (first,) = slowpoke_runs()
    assert first["status"] == "running"  # what the killed host left behind
    assert first["trigger"] == "startup"

    process = serve(config)
    try:
        wait_for(
            lambda: any(
                r["trigger"] == "retry" and r["status"] == "running" for r in slowpoke_runs()
            )
        )
    finally:
        code, events = stop(process)
    assert code == 0
    by_id = {r["run_id"]: r for r in slowpoke_runs()}
    assert by_id[first["run_id"]]["status"] == "interrupted"
    assert by_id[first["run_id"]]["reason"]
    (retry,) = [r for r in by_id.values() if r["trigger"] == "retry"]  # next to a new startup run
    assert retry["attempt"] == 2
    assert retry["first_run_id"] == first["run_id"]
    assert retry["status"] == "cancelled"  # the graceful stop cancelled it after the grace period
    kinds = [e["event"] for e in events]
    assert "interrupted" in kinds and "retry_scheduled" in kinds


def test_plugins_reload_signals_the_running_host(config: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(config.parent)}
    reload = [plugbox_path(), "--config", str(config), "plugins", "reload"]
    idle = subprocess.run(reload, capture_output=True, text=True, env=env)
    assert idle.returncode == 0, idle.stderr  # no serve to tell: the plugins are imported anyway
    assert "loaded example" in idle.stdout and "plugbox serve" not in idle.stdout
    process = serve(config)
    try:
        wait_for(lambda: len(runs(config)) >= 1)
        asked = subprocess.run(reload, capture_output=True, text=True, env=env)
        assert asked.returncode == 0, asked.stderr
        assert f"asked plugbox serve (pid {process.pid})" in asked.stdout
        time.sleep(1)
    finally:
        code, events = stop(process)
    assert code == 0
    assert "reloaded" in [e["event"] for e in events]
    assert not (config.parent / "state" / "serve.pid").exists()


# --- one run's fault is that run's alone ----------------------------------------------------------
def zygote_of(process: subprocess.Popen[str]) -> psutil.Process:
    def found() -> list[psutil.Process]:
        return [
            child
            for child in psutil.Process(process.pid).children()
            if child.name() == "plugbox-zygote"
        ]

    wait_for(lambda: len(found()) == 1)
    return found()[0]


def finished_after(config: Path, moment: datetime, status: str) -> list[dict[str, Any]]:
    def at(record: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(record.get("started_at") or record["scheduled_at"])

    return [r for r in runs(config) if r["status"] == status and at(r) > moment]


def assert_clean_stop(process: subprocess.Popen[str], config: Path) -> list[dict[str, Any]]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-3000:]
    # A worker thread that died would print its traceback ("Exception in thread ...").
    assert "Exception in thread" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    listed = runs(config)
    assert not [r for r in listed if r["status"] == "running"], "a run was left running"
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_zygote_killed_under_serve_fails_only_its_runs_and_is_replaced(config: Path) -> None:
    process = serve(config)
    try:
        wait_for(lambda: any(r["status"] == "success" for r in runs(config)))
        first = zygote_of(process)
        first.kill()  # the fault, at the boundary: the sandbox's fork server is gone
        killed_at = datetime.now(UTC)
        wait_for(lambda: len(finished_after(config, killed_at, "success")) >= 2, timeout=30)
        assert zygote_of(process).pid != first.pid  # a new zygote serves the runs
    finally:
        assert_clean_stop(process, config)


def test_a_stopped_zygote_fails_spawns_after_the_timeout_and_serve_carries_on(
    config: Path,
) -> None:
    process = serve(config)
    try:
        wait_for(lambda: any(r["status"] == "success" for r in runs(config)))
        zygote = zygote_of(process)
        stopped_at = datetime.now(UTC)
        zygote.suspend()  # SIGSTOP: every spawn now waits for the 10 s spawn timeout
        try:
            wait_for(lambda: finished_after(config, stopped_at, "failed"), timeout=30)
        finally:
            zygote.resume()
        resumed_at = datetime.now(UTC)
        wait_for(lambda: len(finished_after(config, resumed_at, "success")) >= 2, timeout=30)
    finally:
        assert_clean_stop(process, config)
    (failed, *_) = finished_after(config, stopped_at, "failed")
    assert failed["error"]["type"] == "SandboxError"
    assert "took longer than 10 s to prepare" in failed["error"]["message"]
    assert "stopped" in failed["error"]["message"]


def test_an_exception_while_running_a_fire_is_recorded_and_the_worker_carries_on(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(load_config(config))
    daemon = Daemon(host)
    real = host.execute
    calls: list[str] = []

    def execute(plan: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["run_id"])  # claimed: the store holds it `running` already
        if len(calls) == 1:
            raise RuntimeError("injected: the store went away mid-run")
        return real(plan, **kwargs)

    monkeypatch.setattr(host, "execute", execute)
    try:
        daemon._load(starting=False)
        daemon._idle = 1
        worker = threading.Thread(target=daemon._work)
        worker.start()
        for _ in range(2):  # one at a time: the job's concurrency is "forbid"
            daemon.trigger("example:hello-cron", requested_by="test")
            daemon._claim()
            wait_for(lambda: daemon._idle == 1 and not daemon._busy())
        daemon._handoff.put(None)  # the worker's stop sentinel
        worker.join(timeout=60)
        assert not worker.is_alive()
        broken, fine = (host.store.get(run_id) for run_id in calls)
    finally:
        host.close()
    assert broken.status == "failed" and broken.finished_at is not None
    assert broken.error is not None and broken.error.type == "HostError"
    assert "injected: the store went away mid-run" in broken.error.message
    assert fine.status == "success"  # the same worker ran the next fire
