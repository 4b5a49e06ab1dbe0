"""A failed request tells the job which request failed, what happened and what to do.

Jobs run through the harness with real network access (``FakeHttp(passthrough=True)``), in the
sandbox (where the broker performs the request in the parent) and in the debug mode, against
local sockets: a closed port, a listener that never answers, a plain-HTTP server spoken to in
TLS, redirects that go nowhere, and a name that cannot resolve (``.invalid`` is reserved).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from plugbox.sandbox import SandboxRunner
from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import FakeHttp, Harness

from .conftest import serving


class _Redirects(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        target = "ftp://files.example.com/x" if self.path == "/to-ftp" else "/loop"
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a plain HTTP server that only redirects."""
    with serving(_Redirects) as address:
        yield address


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A port bound but not listening: a connection to it is refused, and nobody can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A port that accepts connections (the backlog does) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def call(
    runner: SandboxRunner,
    tmp_path: Path,
    jobs: ModuleType,
    in_process: bool,
    url: str,
    host: str,
    **config: Any,
) -> dict[str, Any]:
    allowed = perms.presets.http_hosts(host)
    with Harness(tmp_path / "ws", runner=runner, http=FakeHttp(passthrough=True)) as harness:
        result = harness.run(
            jobs.net_call, config={"url": url, **config}, permissions=allowed, in_process=in_process
        )
    assert result.ok, result.error
    assert isinstance(result.result, dict)
    return result.result


def test_a_refused_connection_names_the_request(
    plugbox_runner: SandboxRunner,
    tmp_path: Path,
    call_jobs: ModuleType,
    in_process: bool,
    closed_port: str,
) -> None:
    url = f"http://{closed_port}/readings"
    got = call(plugbox_runner, tmp_path, call_jobs, in_process, url, closed_port, method="POST")
    assert got["error"] == ("ConnectionRefusedError" if in_process else "OSError")
    assert got["message"].endswith(
        f"POST {url} failed: the connection was refused: nothing listens on that host and port."
        " Check that the service is running and that the URL's host and port are right."
    )
    # In the sandbox the relay keeps the original type in front, as docs/runtime.md says.
    assert in_process or got["message"].startswith("ConnectionRefusedError: POST")


def test_a_name_that_does_not_resolve_names_the_request(
    plugbox_runner: SandboxRunner, tmp_path: Path, call_jobs: ModuleType, in_process: bool
) -> None:
    url = "https://nonexistent.invalid/v1/items?page=2"
    got = call(plugbox_runner, tmp_path, call_jobs, in_process, url, "nonexistent.invalid")
    assert got["error"] == ("gaierror" if in_process else "OSError")
    assert f"GET {url} failed: the host name does not resolve (" in got["message"]
    assert "Check the host name for typos" in got["message"]


def test_a_timeout_names_the_request(
    plugbox_runner: SandboxRunner,
    tmp_path: Path,
    call_jobs: ModuleType,
    in_process: bool,
    silent_port: str,
) -> None:
    url = f"http://{silent_port}/slow"
    got = call(plugbox_runner, tmp_path, call_jobs, in_process, url, silent_port, timeout=0.3)
    assert got["error"] == ("TimeLimitError" if in_process else "OSError")
    assert f"GET {url} failed: no complete answer within 0.3 s." in got["message"]
    assert "pass a larger timeout= to the call" in got["message"]


def test_tls_to_a_plain_http_port_names_the_request(
    plugbox_runner: SandboxRunner,
    tmp_path: Path,
    call_jobs: ModuleType,
    in_process: bool,
    http_server: str,
) -> None:
    url = f"https://{http_server}/x"
    got = call(plugbox_runner, tmp_path, call_jobs, in_process, url, http_server)
    assert got["error"] == ("SSLError" if in_process else "OSError")
    assert f"GET {url} failed: the TLS handshake failed (" in got["message"]
    assert "for a plain HTTP service write http://" in got["message"]


@pytest.mark.parametrize(
    ("path", "rule", "says"),
    [
        ("/to-ftp", "scheme check", "the server redirected GET {url} here"),
        ("/loop", "redirect limit", "GET {url} was redirected more than 5 times"),
    ],
)
def test_a_bad_redirect_names_the_request(
    plugbox_runner: SandboxRunner,
    tmp_path: Path,
    call_jobs: ModuleType,
    in_process: bool,
    http_server: str,
    path: str,
    rule: str,
    says: str,
) -> None:
    url = f"http://{http_server}{path}"
    got = call(plugbox_runner, tmp_path, call_jobs, in_process, url, http_server)
    assert got["denied"] == rule
    assert says.format(url=url) in got["message"]
