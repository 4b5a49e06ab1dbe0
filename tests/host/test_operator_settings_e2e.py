"""Issue 12's "done when": a plugin whose endpoint, config and secret the operator sets.

The plugin and its tests are the ones in docs/configuration.md ("A plugin whose endpoint, config
and secret the operator sets"), copied out of the page. The test runs the plugin's own tests
with the harness, builds its wheel, installs it with pip (not editable) into a plugin path, and
runs it with the installed ``plugbox`` against two services — the operator moves it from one to
the other by editing ``api_url`` in plugbox.toml, with no rebuild. The services echo the token
back, as a careless service does, so the job's log, result and error carry it; the test then
looks for the token everywhere a run is kept or shown: ``jobs run --json``, ``runs list/show``,
the SQLite file itself, and ``plugbox serve``'s HTTP API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.host.api.conftest import cli, plugbox_path, start_serve, wait_until

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
TOKEN = "tok-e2e-7f3a9c41d2"
SECTION = "### A plugin whose endpoint, config and secret the operator sets"
MARK = re.compile(r"<!--\s*(?:file:|not-run: file)\s*(?P<name>\S+?),?\s")


def page_files() -> dict[str, str]:
    """The blocks of the section, by the file each is saved as."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ")]
    files: dict[str, str] = {}
    lines = section.splitlines()
    for number, line in enumerate(lines):
        match = MARK.match(line + " ")
        if match is None:
            continue
        body = []
        for inner in lines[number + 2 :]:
            if inner.startswith("```"):
                break
            body.append(inner)
        files[match["name"]] = "\n".join(body) + "\n"
    return files


class Service:
    """A weather service on an ephemeral port: answers one value, echoes the Authorization."""

    def __init__(self, value: float) -> None:
        self.seen: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                service.seen.append(f"{self.path} {auth}")
                body = json.dumps({"value": value, "echo": auth}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def services() -> Iterator[tuple[Service, Service]]:
    first, second = Service(11.5), Service(22.5)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def write_config(root: Path, site: Path, extra: str) -> Path:
    config = root / "plugbox.toml"
    config.write_text(
        f'plugin_paths = ["{site}"]\n'
        f'state_dir = "{root / "state"}"\n'
        f'workspace = "{root / "ws"}"\n'
        'shutdown_grace = "1s"\n' + extra
    )
    config.chmod(0o600)
    return config


def run_job(config: Path, env: dict[str, str]) -> tuple[int, dict[str, object], str]:
    out = subprocess.run(
        [*_plugbox(config), "jobs", "run", "acme-weather:fetch-reading", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent), **env},
        timeout=120,
    )
    return out.returncode, json.loads(out.stdout), out.stdout + out.stderr


def _plugbox(config: Path) -> list[str]:
    return [plugbox_path(), "--config", str(config)]


def assert_no_token(where: str, text: str) -> None:
    assert TOKEN not in text, f"the secret leaked into {where}"


@pytest.mark.slow
def test_operator_points_an_installed_plugin_at_two_services(
    tmp_path: Path, services: tuple[Service, Service]
) -> None:
    first, second = services
    project = tmp_path / "acme-weather"
    for name, body in page_files().items():
        if name == "plugbox.toml":
            continue
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    (project / "src" / "acme_weather" / "__init__.py").write_text("")

    # The author's tests, with the harness, as in the docs.
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(project / "src")},
        timeout=300,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "3 passed" in tested.stdout

    # Built once, installed with pip (not editable) where the host looks for plugins.
    dist, site = tmp_path / "dist", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "-w", str(dist), str(project)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("acme_weather-0.1.0-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (tmp_path / "ws").mkdir()
    stored: list[str] = []

    # Not configured yet: the job does not run, and says what to set.
    config = write_config(tmp_path, site, "")
    code, record, text = run_job(config, {})
    assert code != 0
    assert record["status"] == "failed"
    error = record["error"]
    assert isinstance(error, dict) and error["type"] == "NotConfigured"
    assert "plugins.acme-weather.config.api_url: not set" in error["message"]
    assert "plugins.acme-weather.secrets.WEATHER_TOKEN: not provided" in error["message"]
    assert first.seen == [] and second.seen == []

    # First service; the token from the host's environment.
    config = write_config(
        tmp_path,
        site,
        f'[plugins.acme-weather.config]\napi_url = "{first.url}"\nkeep = 5\n'
        '[plugins.acme-weather.secrets]\nWEATHER_TOKEN = { env = "ACME_WEATHER_TOKEN" }\n',
    )
    inspected = json.loads(cli(config, "plugins", "inspect", "acme-weather", "--json").stdout)
    settings = inspected["settings"]["fetch-reading"]
    assert settings["config"]["effective"] == {"api_url": first.url, "station": "berlin", "keep": 5}
    (binding,) = settings["bindings"]
    assert binding["rule"] == "net.allow_hosts <- config.api_url"
    assert binding["value"] == first.url.removeprefix("http://")
    assert settings["secrets"] == [
        {
            "name": "WEATHER_TOKEN",
            "source": "environment variable ACME_WEATHER_TOKEN",
            "set_in": "plugins.acme-weather.secrets.WEATHER_TOKEN",
        }
    ]
    code, record, text = run_job(config, {"ACME_WEATHER_TOKEN": TOKEN})
    assert code == 0, text
    assert record["result"] == {"station": "berlin", "value": 11.5, "kept": 1}
    assert first.seen == [f"/readings/berlin Bearer {TOKEN}"]
    enforcement = record["enforcement"]
    assert isinstance(enforcement, dict)
    assert enforcement["bindings"] == [
        {"rule": "net.allow_hosts <- config.api_url", "value": first.url.removeprefix("http://")}
    ]
    # The service echoed the token into the body the job logged: redacted, not dropped.
    assert "Bearer [secret WEATHER_TOKEN]" in json.dumps(record["log"])
    assert_no_token("jobs run --json", text)
    stored.append(str(record["run_id"]))

    # Second service: only plugbox.toml changes (the token now from a file). Same wheel.
    secret_file = tmp_path / "secrets" / "weather-token"
    secret_file.parent.mkdir()
    secret_file.write_text(TOKEN + "\n")
    config = write_config(
        tmp_path,
        site,
        f'[plugins.acme-weather.config]\napi_url = "{second.url}"\n'
        '[plugins.acme-weather.secrets]\nWEATHER_TOKEN = { file = "secrets/weather-token" }\n',
    )
    code, record, text = run_job(config, {})
    assert code == 0, text
    assert record["result"] == {"station": "berlin", "value": 22.5, "kept": 2}
    assert second.seen == [f"/readings/berlin Bearer {TOKEN}"]
    assert len(first.seen) == 1  # the first service is no longer reachable for the job
    assert_no_token("jobs run --json", text)
    stored.append(str(record["run_id"]))

    # A bad operator value stops serve at start, naming the file, table and key.
    bad = write_config(
        tmp_path,
        site,
        f'[plugins.acme-weather.config]\napi_url = "{second.url}"\nkeep = "ten"\n',
    )
    refused = cli(bad, "serve", "--no-http", check=False)
    assert refused.returncode != 0
    assert str(bad) in refused.stderr
    assert "plugins.acme-weather.config.keep: 'ten' is not of type 'integer'" in refused.stderr

    # Through serve's HTTP API: trigger, read the run and the list back.
    config = write_config(
        tmp_path,
        site,
        f'[plugins.acme-weather.config]\napi_url = "{second.url}"\n'
        '[plugins.acme-weather.secrets]\nWEATHER_TOKEN = { file = "secrets/weather-token" }\n',
    )
    token = cli(config, "tokens", "create", "e2e", "--scopes", "admin").stdout.strip()
    served = start_serve(config)
    try:
        with served.client(token) as client:
            answer = client.post(
                "/jobs/acme-weather:fetch-reading/trigger", params={"wait": "true"}
            )
            assert answer.status_code == 200, answer.text
            run_id = answer.json()["run_id"]
            shown = wait_until(
                lambda: (r := client.get(f"/runs/{run_id}")).json().get("status") == "success" and r
            )
            assert_no_token("GET /runs/{id}", shown.text)
            assert "[secret WEATHER_TOKEN]" in shown.text
            assert_no_token("trigger answer", answer.text)
            assert_no_token("GET /runs", client.get("/runs").text)
            stored.append(run_id)
    finally:
        assert served.stop() == 0, "".join(served.stderr)
    assert_no_token("serve's log", "".join(served.stderr))

    # Every stored record, through the CLI and in the database file itself.
    listing = cli(config, "runs", "list", "--json").stdout
    assert_no_token("runs list --json", listing)
    for run_id in stored:
        assert_no_token("runs show --json", cli(config, "runs", "show", run_id, "--json").stdout)
    shown_text = cli(config, "runs", "show", stored[1]).stdout
    assert_no_token("runs show", shown_text)
    bound = second.url.removeprefix("http://")
    assert f"bound: net.allow_hosts <- config.api_url = {bound}" in shown_text
    for db_file in (tmp_path / "state").glob("plugbox.db*"):
        assert TOKEN.encode() not in db_file.read_bytes(), f"the secret is in {db_file.name}"
    assert len(second.seen) == 2
