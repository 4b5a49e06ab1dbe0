"""The run store away for a while under a real ``plugbox serve``: nothing lost, the operator told.

Three ways the database goes: PostgreSQL stopped and started again, a SQLite file locked by
another writer (``BEGIN EXCLUSIVE``) past the busy timeout, and the disk holding the SQLite file
full (a small tmpfs). Each time a run is in flight when the store goes; its outcome must be kept
in memory (``finished`` says ``held``) and written once the store is back (``outcome_written``),
``/readyz`` must answer 503 naming the condition meanwhile, and the log must carry exactly one
``store_unavailable`` and one ``store_available`` line. What handles it: ``StoreOutage``
(plugbox/host/daemon_outage.py) and the dispatcher's write of held outcomes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.host import faults_harness as h

pg_cluster = sys.modules.get("plugbox_tests_pg_cluster")


def make_serve(tmp_path: Path, url: str, *, size: int = 10) -> h.Serve:
    site = tmp_path / "site"
    h.install(site, size=size)
    return h.Serve(
        tmp_path / "host",
        url,
        f'workers = 2\nplugin_paths = ["{site}"]\n[jobs."{h.JOB}"]\nschedule = "*/4 * * * * *"\n',
        http=True,
    )


def readyz(serve: h.Serve) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{serve.http_url()}/readyz", timeout=60)
    return answer.status_code, answer.json()


def in_flight(serve: h.Serve) -> h.RunRecord:
    """A first attempt whose job runs in its child now."""
    running = h.wait_for(
        lambda: next(
            (r for r in h.history(serve.url) if r.status == "running" and r.attempt == 1), None
        ),
        what="a first attempt running",
    )
    h.run_child(serve)
    return running


def held_then_written(serve: h.Serve, run_id: str, condition: str, back: Any) -> None:
    """While the store is away: the run's outcome held, 503 naming ``condition``; after
    ``back()``: the outcome written, 200, one line each way."""
    h.wait_for(
        lambda: serve.seen("finished", run=run_id, status="success"),
        timeout=90,
        what="the run to finish while the store is away",
    )
    (finished,) = serve.seen("finished", run=run_id)
    assert "held" in finished  # control: the outcome could not be written
    (gone,) = serve.seen("store_unavailable")
    assert gone["condition"] == condition
    code, body = readyz(serve)
    assert code == 503 and not body["store_reachable"]
    assert condition in body["detail"] and "held in memory" in body["detail"]
    back()
    h.wait_for(lambda: serve.seen("outcome_written", run=run_id), timeout=60, what="written")
    h.wait_for(lambda: serve.seen("store_available"), timeout=30, what="store_available")
    assert h.run_of(serve.url, run_id).status == "success"
    h.wait_for(lambda: readyz(serve)[0] == 200, timeout=30, what="ready again")
    assert len(serve.seen("store_unavailable")) == 1 and len(serve.seen("store_available")) == 1


def test_sqlite_locked_by_another_writer(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    path = tmp_path / "db" / "plugbox.db"
    serve = make_serve(tmp_path, f"sqlite:///{path}")
    try:
        serve.start()
        running = in_flight(serve)
        locker = sqlite3.connect(path, timeout=30, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            # Past the store's 30 s busy timeout the host's writes fail "database is locked".
            held_then_written(
                serve,
                running.run_id,
                "the database is locked by another writer",
                lambda: locker.execute("ROLLBACK"),
            )
        finally:
            with contextlib.suppress(sqlite3.Error):
                locker.execute("ROLLBACK")
            locker.close()
        serve.stop()
        h.accounted(h.history(serve.url))
    finally:
        serve.stop()


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A server of this test's own: stopping it must not stop the session's."""
    assert pg_cluster is not None, "tests/host/conftest.py loads the pg_cluster helper"
    pg_cluster.require_server(ci=os.environ.get("CI", "").lower() in ("1", "true", "yes"))
    with pg_cluster.running_cluster() as cluster:
        yield cluster


def stop_server(cluster: Any) -> None:
    """``pg_ctl stop -m fast``: every session cut, as a restart does. Not ``immediate``: the test
    server runs with ``synchronous_commit=off``, and its crash recovery would forget the last
    commits (the run's claim among them), which no production setting does."""
    cluster._as_server_user(
        [str(cluster.bindir / "pg_ctl"), "-D", str(cluster.root / "data"), "-m", "fast", "-w",
         "stop"]
    )  # fmt: skip


def start_again(cluster: Any) -> None:
    """``pg_ctl start`` on the stopped server's data directory, same port and socket."""
    options = (
        f"-p {cluster.port} -k {cluster.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
    )
    cluster._as_server_user(
        [str(cluster.bindir / "pg_ctl"), "-D", str(cluster.root / "data"), "-l",
         str(cluster.root / "server.log"), "-o", options, "-w", "-t", "60", "start"]
    )  # fmt: skip


def test_postgresql_stopped_then_started(tmp_path: Path, own_postgres: Any) -> None:
    serve = make_serve(tmp_path, own_postgres.create_database("outage"))
    try:
        serve.start()
        running = in_flight(serve)
        stop_server(own_postgres)
        held_then_written(
            serve,
            running.run_id,
            "the database server does not answer (stopped, restarting or unreachable)",
            lambda: start_again(own_postgres),
        )
        serve.stop()
        h.accounted(h.history(serve.url))
    finally:
        serve.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the state directory and the SQLite file."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sqlite_on_a_full_disk(tmp_path: Path, small_disk: Path) -> None:
    path = small_disk / "plugbox.db"
    # A result of 512 KiB: the outcome's write needs pages the full disk cannot give.
    serve = make_serve(tmp_path, f"sqlite:///{path}", size=512 * 1024)
    filler = small_disk / "filler"
    try:
        serve.start()
        running = in_flight(serve)
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        assert os.statvfs(small_disk).f_bavail == 0  # control: the disk is full
        held_then_written(
            serve, running.run_id, "the disk holding the database is full", filler.unlink
        )
        serve.stop()
        h.accounted(h.history(serve.url))
    finally:
        serve.stop()
