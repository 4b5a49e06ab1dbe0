"""How ``plugbox serve`` listens: where, when it refuses, and that stopping it closes the port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from tests.host.api.conftest import cli, plugbox_path, start_serve, write_config


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
    events = []
    for line in process.stderr:
        events.append(json.loads(line)["event"])
        if events[-1] == "started" or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    events += [json.loads(line)["event"] for line in rest.splitlines() if line.startswith("{")]
    assert process.returncode == 0
    assert "started" in events and "http_listening" not in events
