from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

JOBS_DIR = Path(__file__).parent / "jobs"


def imported_jobs(name: str) -> Iterator[ModuleType]:
    """A jobs module from ``jobs/``, imported as an author's test imports their plugin."""
    sys.path.insert(0, str(JOBS_DIR))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(JOBS_DIR))
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def jobs() -> Iterator[ModuleType]:
    """The test plugin's jobs module."""
    yield from imported_jobs("plugbox_harness_jobs")


@pytest.fixture(scope="session")
def learn_jobs() -> Iterator[ModuleType]:
    """Jobs whose declared permissions are both too wide and too narrow (learn mode)."""
    yield from imported_jobs("plugbox_learn_jobs")


@pytest.fixture(scope="session")
def call_jobs() -> Iterator[ModuleType]:
    """Jobs that make the one runtime call their config names."""
    yield from imported_jobs("plugbox_call_jobs")


@pytest.fixture(params=["sandbox", "in-process"])
def in_process(request: pytest.FixtureRequest) -> bool:
    """Run the test once in the sandbox and once in the in-process debug mode."""
    return bool(request.param == "in-process")


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A local HTTP server answering with ``handler``; yields its ``127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
