"""How ``plugbox serve`` listens: where, when it refuses, and that stopping it closes the port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from tests.host.api.conftest import cli, plugbox_path, start_serve, wait_until, write_config


def test_a_reachable_address_needs_a_token_first(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    refused = cli(config, "serve", "--listen", "0.0.0.0:0", check=False)
    assert refused.returncode == 2
    assert "no API token exists" in refused.stderr
    assert "plugbox tokens create" in refused.stderr
    token = cli(config, "tokens", "create", "ops", "--scopes", "read").stdout.strip()
    served = start_serve(config, "0.0.0.0:0")
    try:
        port = served.url.rsplit(":", 1)[1]
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get(f"http://127.0.0.1:{port}/jobs").status_code == 200
    finally:
        assert served.stop() == 0


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli(config, "serve", "--listen", f"127.0.0.1:{port}", check=False)
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--listen" in out.stderr


def test_a_malformed_listen_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = cli(config, "serve", "--listen", "localhost", check=False)
    assert out.returncode == 2 and "'localhost' is not HOST:PORT" in out.stderr
    config.write_text(config.read_text() + '[http]\nlisten = "8377"\n')
    out = cli(config, "jobs", "list", check=False)
    assert out.returncode == 2 and "http.listen" in out.stderr


def test_http_listen_from_the_config_and_no_http(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.write_text(config.read_text() + f'[http]\nlisten = "127.0.0.1:{port}"\n')
    served = start_serve(config, listen=None)
    try:
        assert served.url == f"http://127.0.0.1:{port}"
    finally:
        assert served.stop() == 0
    # Stopped: the port is closed, not left half-served.
    with socket.socket() as again:
        assert again.connect_ex(("127.0.0.1", port)) != 0


def test_no_http_runs_the_scheduler_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = subprocess.Popen(
        [plugbox_path(), "--config", str(config), "serve", "--no-http"],
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    deadline = time.monotonic() + 60
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if '"event": "started"' in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    lines += rest.splitlines()
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert process.returncode == 0, "".join(lines)
    assert "started" in events and "http_listening" not in events


def test_a_pause_through_the_api_survives_a_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path, napping=False)
    token = cli(config, "tokens", "create", "ops", "--scopes", "admin").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    served = start_serve(config)
    try:
        answer = httpx.post(f"{served.url}/jobs/example:hello-cron/pause", headers=auth)
        assert answer.status_code == 200, answer.text
    finally:
        assert served.stop() == 0
    served = start_serve(config)
    try:
        job = httpx.get(f"{served.url}/jobs/example:hello-cron", headers=auth).json()
    finally:
        assert served.stop() == 0
    assert (job["state"], job["next_fire"]) == ("paused", None)
    assert (job["pause"]["paused"], job["pause"]["changed_by"]) == (True, "ops")


def test_readyz_says_503_while_serve_stops(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('shutdown_grace = "1s"', 'shutdown_grace = "60s"'))
    token = cli(config, "tokens", "create", "ops", "--scopes", "admin").stdout.strip()
    served = start_serve(config)
    try:
        with httpx.Client(
            base_url=served.url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            run_id = client.post("/jobs/apitest:nap/trigger").json()["run_id"]
            wait_until(lambda: client.get(f"/runs/{run_id}").json()["status"] == "running")
            served.process.send_signal(signal.SIGTERM)  # the grace keeps serve up for the nap
            ready = wait_until(lambda: (r := client.get("/readyz")).status_code == 503 and r)
            client.post(f"/runs/{run_id}/cancel")  # so serve need not wait out the grace
    finally:
        assert served.stop() == 0, "".join(served.stderr)
    assert ready.json()["ready"] is False and ready.json()["scheduler_ticking"] is False
    assert "stopping" in ready.json()["detail"]
