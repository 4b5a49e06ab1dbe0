"""What depends on the database behind the SQL store: URLs, migrations racing, unreachable servers.

The store's contract itself is in ``test_store.py`` and runs on every backend.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select

from plugbox.host.store import (
    LATEST_VERSION,
    RunRecord,
    SqlRunStore,
    StoreUnavailableError,
    UnsupportedDatabaseError,
    dialect,
    migrations,
    redact,
)

STARTERS = 8

# Each starter says "ready", waits for "go" on stdin, then opens (and so migrates) the store.
_STARTER = textwrap.dedent(
    """
    import sys
    from plugbox.host.store import SqlRunStore
    print("ready", flush=True)
    sys.stdin.readline()
    with SqlRunStore(sys.argv[1]) as store:
        store.set_paused("p:shared", True)
    print("opened", flush=True)
    """
)


def test_hosts_starting_together_migrate_one_schema(db_url: str) -> None:
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(STARTERS)
    ]
    try:
        for starter in starters:
            assert starter.stdout is not None
            assert starter.stdout.readline().strip() == "ready"
        for starter in starters:  # as close together as a parent can release them
            assert starter.stdin is not None
            starter.stdin.write("go\n")
            starter.stdin.flush()
        results = [starter.communicate(timeout=120) for starter in starters]
    finally:
        for starter in starters:
            starter.kill()
            starter.wait()
    failures = [err for (out, err), s in zip(results, starters, strict=True) if s.returncode]
    assert failures == []
    assert all(out.strip() == "opened" for out, _ in results)
    with SqlRunStore(db_url) as store:
        with store.engine.connect() as conn:
            applied = list(conn.execute(select(migrations.schema_version.c.version)).scalars())
        assert applied == list(range(1, LATEST_VERSION + 1))  # each migration once
        assert {"runs", "job_state", "schema_version"} <= set(
            inspect(store.engine).get_table_names()
        )
        assert store.paused_jobs() == {"p:shared"}


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@db/plugbox", "postgresql+psycopg"),
        ("postgres://u:p@db/plugbox", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@db/plugbox", "postgresql+psycopg"),
        ("sqlite:////var/lib/plugbox/plugbox.db", "sqlite"),
    ],
)
def test_postgresql_urls_mean_psycopg_3(url: str, driver: str) -> None:
    assert dialect.parse_url(url).drivername == driver


@pytest.mark.parametrize(
    "url", ["mysql://u:p@db/plugbox", "postgresql+psycopg2://u:p@db/plugbox", "not a url"]
)
def test_other_databases_are_refused_by_name(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseError, match="sqlite:///PATH or postgresql://"):
        dialect.parse_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://plugbox:hunter2@db:5432/runs", "postgresql://plugbox:***@db:5432/runs"),
        ("postgresql://plugbox@db/runs", "postgresql://plugbox@db/runs"),
        ("sqlite:////srv/plugbox.db", "sqlite:////srv/plugbox.db"),
        ("bad://x:hunter2@y z", "bad://x:***@y z"),
        ("postgresql://u@db/runs?password=hunter2", "postgresql://u@db/runs?password=***"),
        ("bad://u@y z?password=hunter2&x=1", "bad://u@y z?password=***&x=1"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_an_unreachable_server_is_reported_without_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        # Port 1 on loopback: nothing listens, the refusal is immediate.
        SqlRunStore("postgresql://plugbox:hunter2@127.0.0.1:1/runs")
    message = str(caught.value)
    assert "hunter2" not in message
    assert "postgresql://plugbox:***@127.0.0.1:1/runs" in message
    assert "is the server running" in message.lower() or "refused" in message


def test_a_wrong_password_is_reported_without_either_password(postgres: object) -> None:
    good = postgres.tcp_url("postgres")  # type: ignore[attr-defined]
    wrong = good.replace(":s3cret-Pa55word@", ":not-the-Pa55word@")
    with pytest.raises(StoreUnavailableError, match="password authentication failed") as caught:
        SqlRunStore(wrong)
    assert "Pa55word" not in str(caught.value)


def test_a_password_login_over_tcp_works(postgres: object) -> None:
    database = "password_login"
    postgres.create_database(database)  # type: ignore[attr-defined]
    with SqlRunStore(postgres.tcp_url(database)) as store:  # type: ignore[attr-defined]
        store.set_paused("p:a", True)
        assert store.paused_jobs() == {"p:a"}


def _record(run_id: str) -> RunRecord:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return RunRecord(run_id=run_id, job="p:j", status="queued", scheduled_at=moment)
