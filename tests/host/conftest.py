"""A real PostgreSQL server for the host's tests, started once per session by the tests themselves.

Missing server binaries skip the PostgreSQL tests on a developer's machine, with the reason; on
CI (``CI=true``) they fail instead, so a CI machine that lost PostgreSQL cannot pass while
silently testing SQLite alone.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def _load_pg_cluster() -> ModuleType:
    # tests/ is no package (--import-mode=importlib), so the helper is loaded by path; the
    # benchmarks load it the same way.
    name = "plugbox_tests_pg_cluster"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("pg_cluster.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


pg_cluster = _load_pg_cluster()


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture
def pg_tooling() -> ModuleType:
    """The ``pg_cluster`` helper module itself, for the tests of the test tooling."""
    return pg_cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg_cluster.PostgresCluster]:
    """One throwaway server for the session; stopped (and its files deleted) at the end."""
    pg_cluster.require_server(ci=on_ci())
    with pg_cluster.running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres: pg_cluster.PostgresCluster) -> str:
    """The URL of a fresh, empty database of its own."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")
