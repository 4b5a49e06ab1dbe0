"""The ``plugbox`` CLI driven as an operator would: the installed script, a real config, SQLite."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest


def plugbox_path() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found, "the plugbox console script is not installed next to this interpreter"
    return found


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    state = tmp_path / "state"
    config = tmp_path / "plugbox.toml"
    config.write_text(f'state_dir = "{state}"\nworkspace = "{workspace}"\n')
    return config, workspace


def plugbox(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(config.parent)}
    out = subprocess.run(
        [plugbox_path(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def as_json(config: Path, *args: str) -> Any:
    return json.loads(plugbox(config, *args, "--json").stdout)


def test_plugins_list_and_inspect(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    listed = as_json(config, "plugins", "list")
    example = next(p for p in listed["plugins"] if p["id"] == "example")
    assert example["jobs"] == ["hello-cron", "cleanup", "rate-limit"]
    inspected = as_json(config, "plugins", "inspect", "example")
    hello = inspected["jobs"]["hello-cron"]
    assert hello["declared"]["fs"][0]["mode"] == "readWrite"
    assert hello["kernel_write_roots"] == [".plugbox/example"]
    assert inspected["jobs"]["rate-limit"]["declared"]["net"]["allow_hosts"] == [
        "api.github.com:443"
    ]


def test_inspect_shows_when_and_how_each_job_runs(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    with config.open("a") as toml:
        toml.write(
            '[jobs."example:hello-cron"]\ntimezone = "Europe/Berlin"\nschedule = "0 9 * * *"\n'
        )
    jobs = as_json(config, "plugins", "inspect", "example")["jobs"]
    assert jobs["hello-cron"]["scheduling"] == {
        "schedule": "0 9 * * *",
        "timezone": "Europe/Berlin",
        "schedule_words": "At 09:00 (Europe/Berlin)",
        "schedule_error": None,
        "overridden": ["schedule", "timezone"],
        "enabled": True,
        "run_on_startup": False,
        "timeout_ms": 10_000,
        "priority": 5,
        "concurrency": "forbid",
        "misfire": "run_once",
        "catch_up_limit": 10,
        "jitter_ms": 0,
        "retries": 2,
        "retry_delay_ms": 1_000,
        "retry_max_delay_ms": 300_000,
        "retry_delays_ms": [1_000, 2_000],
    }
    rate_limit = jobs["rate-limit"]["scheduling"]
    assert (rate_limit["schedule"], rate_limit["timezone"], rate_limit["overridden"]) == (
        "@hourly",
        "UTC",
        [],
    )
    assert (rate_limit["retry_delays_ms"], rate_limit["timeout_ms"]) == (
        [1_000, 2_000, 4_000],
        30_000,
    )
    shown = plugbox(config, "plugins", "inspect", "example").stdout
    for line in (
        "│ time zone      │ Europe/Berlin (set in plugbox.toml)",
        "│ retries        │ 2, after waiting 1 s, 2 s (exponential backoff, ±10%)",
        "│ timeout        │ 30 s",
        "│ misfire        │ run_once",
        "│ concurrency    │ forbid",
        "│ priority       │ 5 (0-10; higher runs first when workers are busy)",
    ):
        assert line in shown, shown


def test_jobs_list_and_next(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    jobs = {j["job"]: j for j in as_json(config, "jobs", "list")["jobs"]}
    assert jobs["example:hello-cron"]["schedule"] == "*/5 * * * *"
    assert jobs["example:hello-cron"]["next"] is not None
    fires = [
        datetime.fromisoformat(f)
        for f in as_json(config, "jobs", "next", "example:hello-cron", "-n", "3")["next"]
    ]
    assert [b - a for a, b in itertools.pairwise(fires)] == [timedelta(minutes=5)] * 2


def test_run_records_and_shows_the_run(setup: tuple[Path, Path]) -> None:
    config, workspace = setup
    record = as_json(config, "jobs", "run", "example:hello-cron")
    assert record["status"] == "success", record["error"]
    assert record["job"] == "example:hello-cron"
    assert record["trigger"] == "manual"
    assert record["enforcement"]["mode"] == "sandbox"
    assert [e["name"] for e in record["events"]] == ["hello.said"]
    assert (workspace / ".plugbox" / "example" / "cron.log").read_text() == "run 1\n"
    listed = as_json(config, "runs", "list")["runs"]
    assert [r["run_id"] for r in listed] == [record["run_id"]]
    shown = as_json(config, "runs", "show", record["run_id"])
    assert shown["result"] == record["result"]
    text = plugbox(config, "runs", "show", record["run_id"]).stdout
    assert "success" in text and "said hello" in text
    # piped, the table still shows whole values: an id to paste into `runs show`, the whole job
    table = plugbox(config, "runs", "list").stdout
    assert record["run_id"] in table and "example:hello-cron" in table
    assert as_json(config, "runs", "show", record["run_id"][:8])["run_id"] == record["run_id"]
    again = as_json(config, "jobs", "run", "example:hello-cron")
    assert again["result"] == {"ok": True, "run": 2}
    assert (workspace / ".plugbox" / "example" / "cron.log").read_text() == "run 1\nrun 2\n"


def test_failed_run_exits_non_zero_and_is_recorded(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    out = plugbox(config, "jobs", "run", "example:rate-limit", "--json", check=False)
    assert out.returncode == 1
    record = json.loads(out.stdout)
    assert record["status"] == "failed"
    assert record["error"]["message"]
    assert (
        as_json(config, "runs", "list", "--status", "failed")["runs"][0]["run_id"]
        == record["run_id"]
    )


def test_pause_and_resume_survive_restarts(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    plugbox(config, "jobs", "pause", "example:cleanup")
    jobs = {j["job"]: j for j in as_json(config, "jobs", "list")["jobs"]}
    assert jobs["example:cleanup"]["paused"] is True
    plugbox(config, "jobs", "resume", "example:cleanup")
    jobs = {j["job"]: j for j in as_json(config, "jobs", "list")["jobs"]}
    assert jobs["example:cleanup"]["paused"] is False


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["jobs", "run", "example:nope"], "its jobs: hello-cron, cleanup, rate-limit"),
        (["jobs", "run", "nope:x"], "no plugin 'nope'"),
        (["jobs", "next", "hello-cron"], "write PLUGIN:JOB"),
        (["runs", "show", "no-such-run"], "no-such-run"),
    ],
)
def test_bad_input_is_explained(setup: tuple[Path, Path], args: list[str], fragment: str) -> None:
    config, _ = setup
    out = plugbox(config, *args, check=False)
    assert out.returncode == 2
    assert fragment in out.stderr


def test_bad_config_names_the_key(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    config.write_text(config.read_text() + "workers = 0\nbogus = 1\n")
    out = plugbox(config, "jobs", "list", check=False)
    assert out.returncode == 2
    assert "workers" in out.stderr
    assert "bogus" in out.stderr
    assert str(config) in out.stderr


SLEEPY = """
import time

from plugbox.sdk import define_manifest, hookimpl, job


@job("nap", timeout="120s")
def nap(ctx):
    time.sleep(60)
    return {"slept": True}


@job("short", timeout="300ms")
def short(ctx):
    time.sleep(60)
    return {"slept": True}


@job("peek")
def peek(ctx):
    try:
        ctx.runtime.fs.read_text(".env")
    except PermissionError:
        return {"peeked": False}
    return {"peeked": True}


manifest = define_manifest(id="sleepy", version="1.0", name="Sleepy", jobs=[nap, short, peek])


@hookimpl
def plugbox_manifest():
    return manifest
"""


@pytest.fixture
def sleepy(setup: tuple[Path, Path]) -> Path:
    """A config with an installed-looking plugin whose jobs sleep far past their limits."""
    config, _ = setup
    site = config.parent / "site"
    info = site / "pbt_sleepy-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbt-sleepy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\nsleepy = pbt_sleepy\n")
    (site / "pbt_sleepy.py").write_text(SLEEPY)
    config.write_text(
        f'plugin_paths = ["{site}"]\n'
        + config.read_text()
        + '\n[jobs."sleepy:nap"]\nquotas = { timeout_ms = 400 }\n'
    )
    return config


@pytest.mark.parametrize(
    ("job", "limit_ms"),
    [("sleepy:short", 300), ("sleepy:nap", 400)],
    ids=["the job's own timeout", "the operator's quota override"],
)
def test_timeouts_the_author_or_operator_set_are_enforced(
    sleepy: Path, job: str, limit_ms: int
) -> None:
    out = plugbox(sleepy, "jobs", "run", job, "--json", check=False)
    assert out.returncode == 1, out.stderr
    record = json.loads(out.stdout)
    assert record["status"] == "timeout"
    assert record["kill_reason"] == "timeout"
    assert f"exceeded its {limit_ms} ms timeout" in record["error"]["message"]


def test_a_run_records_what_it_was_refused_even_when_the_job_carried_on(sleepy: Path) -> None:
    record = as_json(sleepy, "jobs", "run", "sleepy:peek")
    assert record["status"] == "success"
    assert record["result"] == {"peeked": False}
    assert record["denials"] == [
        {
            "operation": "fs.read",
            "target": ".env",
            "allowed": False,
            "rule": "default deny",
            "reason": "no fs rule allows reading here",
            "is_dir": False,
        }
    ]
    assert as_json(sleepy, "runs", "show", record["run_id"])["denials"] == record["denials"]
    shown = plugbox(sleepy, "runs", "show", record["run_id"]).stdout
    assert "denied fs.read '.env' by default deny (no fs rule allows reading here)" in shown


def test_inspect_shows_the_quotas_a_run_really_gets(sleepy: Path) -> None:
    jobs = as_json(sleepy, "plugins", "inspect", "sleepy")["jobs"]
    assert jobs["short"]["quotas_in_force"]["timeout_ms"] == 300  # @job(timeout="300ms")
    assert jobs["nap"]["quotas_in_force"]["timeout_ms"] == 400  # the operator's override
    assert jobs["peek"]["quotas_in_force"]["timeout_ms"] == 600_000  # the host default
