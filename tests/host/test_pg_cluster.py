"""The test tooling's PostgreSQL: never a silent skip on CI, and nothing left behind."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(shutil, "which", lambda _name: None)


@pytest.mark.usefixtures("no_server")
def test_missing_binaries_fail_on_ci(pg_tooling: ModuleType) -> None:
    with pytest.raises(pytest.fail.Exception, match="CI must test the PostgreSQL store"):
        pg_tooling.require_server(ci=True)


@pytest.mark.usefixtures("no_server")
def test_missing_binaries_skip_elsewhere_with_the_reason(pg_tooling: ModuleType) -> None:
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        pg_tooling.require_server(ci=False)


def test_the_server_runs_unprivileged_and_leaves_nothing(postgres: Any) -> None:
    data = Path(postgres.root) / "data"
    owner = os.stat(data).st_uid
    assert owner != 0  # initdb and postgres refuse root; as root, the tests use plugbox-pg
    assert postgres.psql("SHOW fsync") == "off"
    assert postgres.psql("SELECT current_setting('unix_socket_directories')") == str(
        postgres.socket_dir
    )
    # (The session fixture stops it; running_cluster() deletes root — see pg_cluster.py.)
