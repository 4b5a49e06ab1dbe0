"""The CLI on a PostgreSQL run store: the installed script, a real config, the session's server."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from plugbox.host.store import SqlRunStore
from plugbox.host.store.sql import runs


def _plugbox(config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found, "the plugbox console script is not installed next to this interpreter"
    return subprocess.run(
        [found, "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent), **env},
        timeout=120,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    path = tmp_path / "plugbox.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\nworkspace = "{workspace}"\n')
    return path


def test_a_run_is_recorded_in_postgresql_and_read_back(config: Path, pg_url: str) -> None:
    env = {"PLUGBOX_DATABASE_URL": pg_url}

    def as_json(*args: str) -> Any:
        out = _plugbox(config, *args, "--json", env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    record = as_json("jobs", "run", "example:hello-cron")
    assert record["status"] == "success", record["error"]
    assert [r["run_id"] for r in as_json("runs", "list")["runs"]] == [record["run_id"]]
    shown = as_json("runs", "show", record["run_id"][:8])
    assert shown["run_id"] == record["run_id"]
    assert shown["result"] == record["result"]
    # the run is in PostgreSQL, not in a SQLite file beside the config
    assert not (config.parent / "state" / "plugbox.db").exists()
    with SqlRunStore(pg_url) as store, store.engine.connect() as conn:
        assert store.engine.dialect.name == "postgresql"
        assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == 1


def test_db_option_wins_over_the_environment(config: Path, pg_url: str) -> None:
    env = {"PLUGBOX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}
    out = _plugbox(config, "--db", pg_url, "jobs", "run", "example:hello-cron", "--json", env=env)
    assert out.returncode == 0, out.stderr
    with SqlRunStore(pg_url) as store:
        assert [r.run_id for r in store.list()] == [json.loads(out.stdout)["run_id"]]


def test_an_unreachable_store_is_one_line_without_the_password(config: Path) -> None:
    url = "postgresql://plugbox:hunter2@127.0.0.1:1/plugbox"
    out = _plugbox(config, "--db", url, "runs", "list", env={})
    assert out.returncode == 2
    assert out.stderr.startswith("error: cannot open the run store at postgresql://plugbox:***@")
    assert "hunter2" not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_a_bad_db_option_names_the_option(config: Path) -> None:
    out = _plugbox(config, "--db", "mysql://u:hunter2@db/x", "runs", "list", env={})
    assert out.returncode == 2
    assert "option --db: unsupported database 'mysql'" in out.stderr
    assert "hunter2" not in out.stderr


def _serve_config(tmp_path: Path, name: str) -> Path:
    (tmp_path / "ws").mkdir(exist_ok=True)
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'state_dir = "{tmp_path / name}"\nworkspace = "{tmp_path / "ws"}"\nhost_id = "{name}"\n'
        'shutdown_grace = "2s"\n\n[jobs."example:hello-cron"]\nschedule = "* * * * * *"\n'
    )
    return path


def test_serve_records_in_postgresql_and_a_second_serve_shares_the_fires(
    tmp_path: Path, pg_url: str
) -> None:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PLUGBOX_DATABASE_URL": pg_url}

    def serve(name: str) -> subprocess.Popen[str]:
        config = _serve_config(tmp_path, name)
        return subprocess.Popen(
            [found, "--config", str(config), "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    with serve("host-a") as first, SqlRunStore(pg_url) as store:
        try:
            deadline = time.monotonic() + 60
            while not any(r.status == "success" for r in store.list(job="example:hello-cron")):
                assert first.poll() is None, first.communicate()[1]
                assert time.monotonic() < deadline, "no run recorded in PostgreSQL within 60 s"
                time.sleep(0.2)
            with serve("host-b") as second:  # a replica: it claims fires, never repeats one
                try:
                    deadline = time.monotonic() + 60
                    while "host-b" not in {r.host_id for r in store.list(limit=1000)}:
                        assert second.poll() is None, second.communicate()[1]
                        assert time.monotonic() < deadline, "host-b ran nothing within 60 s"
                        time.sleep(0.2)
                finally:
                    second.send_signal(signal.SIGTERM)
                    second.communicate(timeout=60)
            assert second.returncode == 0
            fired = [
                r.scheduled_at
                for r in store.list(job="example:hello-cron", limit=1000)
                if r.trigger == "schedule"
            ]
            assert len(fired) == len(set(fired))  # each instant once across both
        finally:
            first.send_signal(signal.SIGTERM)
            _, log = first.communicate(timeout=60)
    assert first.returncode == 0, log
    started = next(json.loads(line) for line in log.splitlines() if '"started"' in line)
    assert started["store"].startswith("postgresql://plugbox@/t_")
