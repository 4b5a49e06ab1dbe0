"""A real ``plugbox serve`` with its HTTP API, driven as an operator would: the installed script,
a real config and SQLite, tokens made with ``plugbox tokens create``, requests with httpx.

Besides the example plugin, an installed-looking ``apitest`` plugin brings two jobs that sleep (to
cancel them while they run, or to keep both workers busy), a quick one, and a disabled one; ``broken`` fails at import.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

APITEST = """
import time

from plugbox.sdk import define_manifest, hookimpl, job


@job("nap", timeout="120s", tags=["slow"])
def nap(ctx):
    time.sleep(60)
    return {"slept": True}


@job("doze", timeout="120s", tags=["slow"])
def doze(ctx):
    time.sleep(60)
    return {"slept": True}


@job("quick", tags=["fast"])
def quick(ctx):
    return {"ok": True}


@job("off", enabled=False)
def off(ctx):
    return {"ok": True}


manifest = define_manifest(id="apitest", version="1.0", name="API test", jobs=[nap, doze, quick, off])


@hookimpl
def plugbox_manifest():
    return manifest
"""
BROKEN = "raise ImportError('this plugin is broken on purpose')\n"


def plugbox_path() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found, "the plugbox console script is not installed next to this interpreter"
    return found


def _install(site: Path, name: str, module: str, source: str) -> None:
    info = site / f"pbt_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pbt-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[plugbox]\n{name} = {module}\n")
    (site / f"{module}.py").write_text(source)


def write_config(root: Path, *, napping: bool = True) -> Path:
    """A config with the test plugins installed; ``napping=False`` leaves out ``apitest``,
    whose ``nap`` job holds a worker for a minute."""
    (root / "ws").mkdir(parents=True)
    site = root / "site"
    if napping:
        _install(site, "apitest", "pbt_apitest", APITEST)
    _install(site, "broken", "pbt_broken", BROKEN)
    config = root / "plugbox.toml"
    config.write_text(
        f'plugin_paths = ["{site}"]\n'
        f'state_dir = "{root / "state"}"\n'
        f'workspace = "{root / "ws"}"\n'
        "workers = 2\n"
        'shutdown_grace = "1s"\n'
    )
    return config


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [plugbox_path(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
        timeout=120,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def wait_until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("condition not met in time")


@dataclass
class Served:
    """A running ``plugbox serve`` and what a test needs to talk to it."""

    process: subprocess.Popen[str]
    config: Path
    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=30)
        if self.reader is not None:
            self.reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


def start_serve(config: Path, listen: str | None = "127.0.0.1:0") -> Served:
    """Start serve (``--listen`` unless None: then the config decides) and wait for its address."""
    args = () if listen is None else ("--listen", listen)
    process = subprocess.Popen(
        [plugbox_path(), "--config", str(config), "serve", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
    )
    served = Served(process, config)

    def read() -> None:  # drain stderr so serve never blocks on a full pipe
        assert process.stderr is not None
        for line in process.stderr:
            served.stderr.append(line)
            if line.startswith("{"):
                served.events.append(json.loads(line))

    served.reader = threading.Thread(target=read, daemon=True)
    served.reader.start()

    def address() -> str | None:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {''.join(served.stderr)}")
        return next((e["address"] for e in served.events if e["event"] == "http_listening"), None)

    served.url = f"http://{wait_until(address, timeout=60)}"
    return served


@dataclass(frozen=True)
class Api:
    served: Served
    tokens: dict[str, str]  #: scope name -> a token holding exactly that scope

    def client(self, scope: str | None = "admin") -> httpx.Client:
        return self.served.client(self.tokens[scope] if scope else None)


def token_per_scope(config: Path) -> dict[str, str]:
    """A token of each scope, made as an operator would (``read-bot``, ``trigger-bot``, ...)."""
    return {
        scope: cli(config, "tokens", "create", f"{scope}-bot", "--scopes", scope).stdout.strip()
        for scope in ("read", "trigger", "admin")
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    config = write_config(tmp_path_factory.mktemp("api"))
    tokens = token_per_scope(config)
    served = start_serve(config)
    try:
        yield Api(served, tokens)
    finally:
        assert served.stop() == 0, "".join(served.stderr)
