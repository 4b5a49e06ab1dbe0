"""Webhooks through what an operator touches: plugbox.toml, ``plugbox serve``, ``plugbox jobs
run``, ``plugbox webhooks log`` and ``plugbox runs show``, against a receiver on 127.0.0.1 that
checks every signature itself (conftest.py)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

FLAKY = """
from plugbox.sdk import define_manifest, hookimpl, job


@job("flaky", description="fails on odd runs")
def flaky(ctx):
    if ctx.run_count % 2:
        raise RuntimeError(f"run {ctx.run_count} fails on purpose")
    return {"run": ctx.run_count}


manifest = define_manifest(id="flaky", version="1.0", name="Flaky", jobs=[flaky])


@hookimpl
def plugbox_manifest():
    return manifest
"""


def plugbox_path() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found
    return found


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    site = tmp_path / "site"
    info = site / "pbt_flaky-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbt-flaky\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\nflaky = pbt_flaky\n")
    (site / "pbt_flaky.py").write_text(FLAKY)
    return tmp_path


def write_config(home: Path, extra: str, *, every_second: bool = False) -> Path:
    schedule = 'schedule = "* * * * * *"' if every_second else "enabled = false"
    path = home / "plugbox.toml"
    path.write_text(
        f'state_dir = "{home / "state"}"\nworkspace = "{home / "ws"}"\n'
        f'plugin_paths = ["{home / "site"}"]\nshutdown_grace = "2s"\n\n'
        f'[jobs."example:hello-cron"]\n{schedule}\n\n{extra}'
    )
    return path


def hook(url: str, events: list[str], jobs: list[str] | None = None, **more: str) -> str:
    lines = ["[[webhooks]]", f'url = "{url}"', f"events = {json.dumps(events)}"]
    if jobs is not None:
        lines.append(f"jobs = {json.dumps(jobs)}")
    lines.append('secret_env = "HOOK_SECRET"')
    lines += [f'{key} = "{value}"' for key, value in more.items()]
    return "\n".join(lines) + "\n\n"


def env_for(home: Path, secret: str | None) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    if secret is not None:
        env["HOOK_SECRET"] = secret
    return env


def plugbox(
    config: Path, *args: str, secret: str | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [plugbox_path(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env_for(config.parent, secret),
        timeout=120,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def deliveries(config: Path, *args: str) -> list[dict[str, Any]]:
    out = plugbox(config, "webhooks", "log", "--json", *args)
    return json.loads(out.stdout)["deliveries"]  # type: ignore[no-any-return]


def wait_for(condition: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail("condition not met in time")


def serve(config: Path, secret: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [plugbox_path(), "--config", str(config), "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(config.parent, secret),
    )


def stop(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def delivered_on_third(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((d for d in found if d["state"] == "delivered" and len(d["attempts"]) == 3), None)


def test_serve_delivers_on_the_third_attempt_and_every_attempt_is_logged(
    home: Path, receiver: Any
) -> None:
    config = write_config(
        home, hook(receiver.url(), ["run.succeeded"], ["example:hello-cron"]), every_second=True
    )
    process = serve(config, receiver.secret)
    try:
        done = wait_for(lambda: delivered_on_third(deliveries(config)))
    finally:
        stop(process)
    assert [a["attempt"] for a in done["attempts"]] == [1, 2, 3]
    assert [a["status_code"] for a in done["attempts"]] == [500, 500, 200]
    first, second, third = done["attempts"]
    # Exponential backoff with jitter: about 1 s, then about 2 s (±25 %).
    gap1 = datetime.fromisoformat(second["at"]) - datetime.fromisoformat(first["at"])
    gap2 = datetime.fromisoformat(third["at"]) - datetime.fromisoformat(second["at"])
    assert 0.7 <= gap1.total_seconds() < 3 and 1.4 <= gap2.total_seconds() < 5, (gap1, gap2)
    assert first["next_retry_at"] and second["next_retry_at"] and third["next_retry_at"] is None
    seen = [r for r in receiver.of("/hook") if r.delivery_id == done["delivery_id"]]
    assert [r.answered for r in seen] == [500, 500, 200]
    assert all(r.signature_ok for r in seen)
    body = seen[0].body
    assert all(r.body == body for r in seen)  # the same payload, id and all, on every attempt
    assert body["type"] == "run.succeeded"
    assert body["data"]["run_id"] == done["run_id"]
    assert body["data"]["job"] == "example:hello-cron" and body["data"]["status"] == "success"
    assert "log" not in body["data"] and "output" not in body["data"]  # a summary

    (logged,) = deliveries(config, "--run", done["run_id"][:12])
    assert logged == done
    for command in (("webhooks", "log", "--run", done["run_id"]), ("runs", "show", done["run_id"])):
        text = plugbox(config, *command).stdout
        assert done["delivery_id"] in text and "attempt 3" in text and "delivered" in text
        assert text.count("500") >= 2 and "200" in text


def test_jobs_run_makes_the_first_attempt_and_serve_carries_on(home: Path, receiver: Any) -> None:
    config = write_config(home, hook(receiver.url(), ["run.succeeded"]))
    plugbox(config, "jobs", "run", "example:hello-cron", secret=receiver.secret)
    (left,) = deliveries(config)
    assert left["state"] == "pending"
    assert [a["status_code"] for a in left["attempts"]] == [500]
    assert left["next_attempt_at"] == left["attempts"][0]["next_retry_at"]

    process = serve(config, receiver.secret)  # no job fires here: only the delivery is left
    try:
        done = wait_for(lambda: delivered_on_third(deliveries(config)))
    finally:
        stop(process)
    assert done["delivery_id"] == left["delivery_id"]
    assert [a["status_code"] for a in done["attempts"]] == [500, 500, 200]


def test_events_and_jobs_filters_pick_the_receivers(home: Path, receiver: Any) -> None:
    receiver.fail_first = 0
    config = write_config(
        home,
        hook(receiver.url("/failed"), ["run.failed", "run.timeout"], ["flaky:*"])
        + hook(receiver.url("/recovered"), ["run.recovered"], ["flaky:flaky"])
        + hook(receiver.url("/example"), ["run.succeeded"], ["example:hello-*"])
        + hook(receiver.url("/all"), ["run.succeeded", "run.failed"]),
    )
    failed = plugbox(config, "jobs", "run", "flaky:flaky", secret=receiver.secret, ok=False)
    assert failed.returncode == 1
    plugbox(config, "jobs", "run", "flaky:flaky", secret=receiver.secret)  # recovers
    plugbox(config, "jobs", "run", "example:hello-cron", secret=receiver.secret)

    assert [r.body["type"] for r in receiver.of("/failed")] == ["run.failed"]
    assert receiver.of("/failed")[0].body["data"]["error"]["message"] == "run 1 fails on purpose"
    assert [r.body["type"] for r in receiver.of("/recovered")] == ["run.recovered"]
    assert [r.body["data"]["job"] for r in receiver.of("/example")] == ["example:hello-cron"]
    assert [r.body["type"] for r in receiver.of("/all")] == [
        "run.failed",
        "run.succeeded",
        "run.succeeded",
    ]
    assert all(r.signature_ok and r.answered == 200 for r in receiver.received)
    assert {d["state"] for d in deliveries(config)} == {"delivered"}
    assert len(deliveries(config)) == 6


def test_a_success_after_a_success_is_no_recovery(home: Path, receiver: Any) -> None:
    receiver.fail_first = 0
    config = write_config(home, hook(receiver.url(), ["run.recovered"]))
    for _ in range(2):
        plugbox(config, "jobs", "run", "example:hello-cron", secret=receiver.secret)
    assert receiver.received == []
    assert deliveries(config) == []


def test_a_receiver_that_never_answers_does_not_delay_fires(home: Path, receiver: Any) -> None:
    config = write_config(
        home,
        hook(receiver.url("/silent"), ["run.succeeded"], timeout="60s"),
        every_second=True,
    )
    process = serve(config, receiver.secret)
    try:
        out = lambda: json.loads(plugbox(config, "runs", "list", "--json").stdout)["runs"]  # noqa: E731
        wait_for(lambda: len([r for r in out() if r["status"] == "success"]) >= 6)
    finally:
        events = stop(process)
    # The sender is stuck on its first request for the whole test...
    assert len(receiver.of("/silent")) == 1
    # ...while every fire started on time. The bound is generous (normally a few milliseconds;
    # a shared CI machine can be slow) and far below the receiver's 60 s timeout, which a
    # sender blocking the scheduler or its workers would add.
    fired = [e for e in events if e["event"] == "fired"]
    assert len(fired) >= 6
    late = [
        (
            datetime.fromisoformat(e["at"]) - datetime.fromisoformat(e["scheduled_at"])
        ).total_seconds()
        for e in fired
    ]
    assert max(late) < 5.0, late
    (left,) = [e for e in events if e["event"] == "webhooks_left_pending"]
    assert left["deliveries"] >= 5  # kept in the store for the next start, not lost


def test_secret_problems_stop_runs_but_not_reading(home: Path, receiver: Any) -> None:
    config = write_config(home, hook(receiver.url(), ["run.failed"]))
    missing = plugbox(config, "jobs", "run", "example:hello-cron", ok=False)
    assert missing.returncode == 2
    assert "webhooks[0].secret_env: the environment variable HOOK_SECRET is not set" in (
        missing.stderr
    )
    assert str(config) in missing.stderr
    bad = plugbox(config, "serve", secret="not-a-secret", ok=False)
    assert bad.returncode == 2
    assert "webhooks[0].secret_env: HOOK_SECRET: the secret must start with 'whsec_'" in bad.stderr
    assert plugbox(config, "runs", "list").returncode == 0  # reading history needs no secret


def test_bad_webhook_tables_are_named_with_index_and_key(home: Path) -> None:
    config = write_config(
        home,
        hook("ftp://example.com/x", ["run.failed"])
        + hook("http://127.0.0.1:9/a", ["run.exploded"], ["example"])
        + hook("http://127.0.0.1:9/a", ["run.failed"], secret="inline"),
    )
    config.write_text(config.read_text().replace('secret_env = "HOOK_SECRET"\nsecret', "secret"))
    done = plugbox(config, "runs", "list", ok=False)
    assert done.returncode == 2
    assert str(config) in done.stderr
    assert "webhooks[0].url: 'ftp://example.com/x' is not an http:// or https:// URL" in done.stderr
    assert "webhooks[1].events[0]: Input should be 'run.failed'" in done.stderr
    assert "webhooks[1].jobs: 'example' is not PLUGIN:JOB" in done.stderr
    assert "webhooks[2].secret: unknown key; did you mean 'secret_env'?" in done.stderr
    assert "webhooks[2].secret_env: required but missing" in done.stderr
