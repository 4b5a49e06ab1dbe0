"""The CLI's fast path (ADR 0032) prints what the full path prints, and reads what the store holds.

``runs list`` and ``jobs list`` read a SQLite store through stdlib ``sqlite3`` and print tables
without rich where they can. Each comparison runs the installed script twice on one real store:
once as configured (fast: SQLAlchemy never imported, which the child reports) and once with a
URL option the fast path leaves alone (``?timeout=30``: the full path, SQLAlchemy and pydantic).
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Column, Table
from sqlalchemy.engine import make_url

from plugbox.host import fastread
from plugbox.host.cli_plain import plain_table, plain_width
from plugbox.host.config import load_config
from plugbox.host.store import RunRecord, SqlRunStore
from plugbox.host.store.migrations import LATEST_VERSION

REPO = Path(__file__).resolve().parents[2]
#: Runs the CLI, then names on stderr's last line which heavy packages it imported. With "rich"
#: first, every table is printed through rich, as before the fast path.
_RUN_CLI = """
import sys
if sys.argv.pop(1) == "rich":
    import plugbox.host.cli_plain
    plugbox.host.cli_plain.plain_table = lambda *args, **kwargs: None
from plugbox.host.cli import main
try:
    main()
finally:
    heavy = ("sqlalchemy", "pydantic", "rich")
    print("imported:", *(name for name in heavy if name in sys.modules), file=sys.stderr)
"""
#: Every example job moved to a yearly schedule, so the next fire cannot change between the
#: two commands compared.
_YEARLY = "".join(
    f'[jobs."example:{job}"]\nschedule = "0 0 1 1 *"\n'
    for job in ("hello-cron", "cleanup", "rate-limit")
)


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    """A config and its SQLite store holding runs of every shape ``runs list`` shows."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    state = tmp_path / "state"
    config = tmp_path / "plugbox.toml"
    config.write_text(f'state_dir = "{state}"\nworkspace = "{workspace}"\n{_YEARLY}')
    state.mkdir(mode=0o700)
    database = state / "plugbox.db"
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    with SqlRunStore(f"sqlite:///{database}") as store:
        for n in range(120):
            at = start + timedelta(minutes=7 * n, microseconds=n)
            started = None if n % 11 == 0 else at
            store.add(
                RunRecord(
                    run_id=f"run{n:05d}" + ("x" * 40 if n == 3 else ""),
                    job=f"example:{('hello-cron', 'cleanup', 'rate-limit')[n % 3]}",
                    status=("success", "failed", "timeout", "killed", "skipped")[n % 5],
                    trigger=("schedule", "manual", "retry")[n % 3],
                    attempt=1 + n % 3,
                    first_run_id=None if n % 3 == 0 else "run00000",
                    scheduled_at=at,
                    started_at=started,
                    finished_at=None if started is None else at + timedelta(seconds=1),
                    duration_ms=None if n % 4 == 0 else n * 13,
                )
            )
        store.set_paused("example:cleanup", True)
    return config, database


def _cli(config: Path, *args: str, db: str | None = None, rich: bool = False) -> tuple[str, bool]:
    """stdout of ``plugbox --config CONFIG [--db DB] ARGS`` and whether SQLAlchemy was imported;
    ``rich``: every table printed through rich."""
    out = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, "rich" if rich else "plain", "--config", str(config)]
        + (["--db", db] if db else [])
        + list(args),
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    return out.stdout, "sqlalchemy" in last.split()


def _heavy(config: Path, *args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, "plain", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
        timeout=120,
    )
    return set(out.stderr.strip().splitlines()[-1].split()[1:])


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list"],
        ["runs", "list", "--limit", "7"],
        ["runs", "list", "--job", "example:cleanup", "--limit", "200"],
        ["runs", "list", "--status", "failed"],
        ["runs", "list", "--status", "no-such-status"],
        ["runs", "list", "--json"],
        ["jobs", "list"],
        ["jobs", "list", "--json"],
    ],
)
def test_the_fast_path_prints_what_the_full_path_prints(
    host: tuple[Path, Path], args: list[str]
) -> None:
    config, database = host
    fast, fast_imported = _cli(config, *args)
    full, full_imported = _cli(config, *args, db=f"sqlite:///{database}?timeout=30", rich=True)
    assert fast == full
    assert full_imported
    if args[:2] == ["runs", "list"] and "--json" not in args:
        assert not fast_imported, "runs list took the full path"
        assert _heavy(config, *args) == set(), "runs list into a pipe needs none of them"
    assert fast.strip()


def test_what_rich_would_style_or_wrap_is_printed_by_rich(host: tuple[Path, Path]) -> None:
    """A job name the terminal must not obey, and one rich measures as wide, still match."""
    config, database = host
    with SqlRunStore(f"sqlite:///{database}") as store:
        at = datetime(2027, 1, 1, tzinfo=UTC)
        for n, job in enumerate(("evil:\x1b]0;owned\x07", "wide:日本語")):
            store.add(RunRecord(run_id=f"odd{n}", job=job, status="success", scheduled_at=at))
    fast, fast_imported = _cli(config, "runs", "list")
    full, _ = _cli(config, "runs", "list", db=f"sqlite:///{database}?timeout=30", rich=True)
    assert fast == full
    assert not fast_imported
    assert "\\x1b]0;owned\\x07" in fast and "\x1b" not in fast


def test_runs_list_reads_a_postgresql_store(host: tuple[Path, Path], pg_url: str) -> None:
    config, _ = host
    with SqlRunStore(pg_url) as store:
        store.add(
            RunRecord(
                run_id="pg1",
                job="example:cleanup",
                status="success",
                scheduled_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    table, imported = _cli(config, "runs", "list", db=pg_url)
    assert imported
    assert "pg1" in table and "example:cleanup" in table
    jobs, _ = _cli(config, "jobs", "list", db=pg_url)
    assert "example:cleanup" in jobs


def test_fast_reads_return_what_the_store_returns(host: tuple[Path, Path]) -> None:
    _, database = host
    assert fastread.SCHEMA_VERSION == LATEST_VERSION
    with SqlRunStore(f"sqlite:///{database}") as store:
        for job, status, limit in [
            (None, None, 50),
            (None, None, 10_000),
            ("example:cleanup", None, 30),
            (None, "failed", 5),
            ("example:rate-limit", "success", 100),
            ("nobody:nothing", None, 10),
        ]:
            expected = [
                (r.run_id, r.job, r.status, r.trigger, r.attempt, r.started_at, r.duration_ms)
                for r in store.list(job=job, status=status, limit=limit)  # type: ignore[arg-type]
            ]
            lines = fastread.recent_runs(database, job=job, status=status, limit=limit)
            assert lines is not None
            got = [
                (r.run_id, r.job, r.status, r.trigger, r.attempt, r.started_at, r.duration_ms)
                for r in lines
            ]
            assert got == expected
        assert fastread.paused_jobs(database) == store.paused_jobs() == {"example:cleanup"}


def test_a_store_at_another_schema_version_is_left_to_the_full_path(
    host: tuple[Path, Path],
) -> None:
    _, database = host
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from a newer plugbox', 0)",
            (LATEST_VERSION + 1,),
        )
    conn.close()
    assert fastread.recent_runs(database, job=None, status=None, limit=5) is None
    assert fastread.paused_jobs(database) is None


def test_places_the_full_path_must_check_are_left_to_it(
    host: tuple[Path, Path], tmp_path: Path
) -> None:
    config, database = host
    env = {"HOME": str(tmp_path)}
    assert fastread.locate_store(str(config), None, env) == database
    # PostgreSQL, options, memory: not a plain file
    for url in ("postgresql://u:p@h/db", f"sqlite:///{database}?timeout=3", "sqlite://"):
        assert fastread.locate_store(str(config), url, env) is None
    # a store not created yet: the full path creates it
    assert fastread.locate_store(str(config), f"sqlite:///{tmp_path / 'new.db'}", env) is None
    # a store inside the workspace: the full path refuses it
    inside = tmp_path / "workspace" / "x.db"
    inside.write_bytes(database.read_bytes())
    assert fastread.locate_store(str(config), f"sqlite:///{inside}", env) is None
    # a state directory others may enter: the full path tightens it first
    os.chmod(database.parent, 0o750)
    assert fastread.locate_store(str(config), None, env) is None
    os.chmod(database.parent, 0o700)
    # a config file others may write: the full path refuses it
    os.chmod(config, 0o666)
    assert fastread.locate_store(str(config), None, env) is None


def _doc_examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")]):
        for n, block in enumerate(re.findall(r"```toml\n(.*?)```", page.read_text(), re.DOTALL)):
            found.append((f"{page.name}#{n}", block))
    return found


@pytest.mark.parametrize(("where", "example"), _doc_examples(), ids=lambda v: str(v)[:30])
def test_the_store_is_placed_where_load_config_places_it(
    where: str, example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One configuration model: for every example in the docs, and each way of naming the
    store, the fast reader finds the store ``load_config`` finds (or leaves it to it)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "etc" / "plugbox.toml"
    config.parent.mkdir()
    config.write_text(example)
    base_env = {"HOME": str(tmp_path / "home"), "PLUGBOX_WORKSPACE": str(tmp_path / "ws")}
    (tmp_path / "ws").mkdir()
    cases: list[tuple[dict[str, str], str | None]] = [
        ({}, None),
        ({"PLUGBOX_STATE_DIR": "state"}, None),
        ({"XDG_STATE_HOME": str(tmp_path / "xdg")}, None),
        ({"PLUGBOX_DATABASE_URL": "sqlite:///rel/run.db"}, None),
        ({}, "sqlite:///~/runs.db"),
        ({}, "postgresql://u:p@db.example/plugbox"),
    ]
    compared = 0
    for extra, db in cases:
        env = base_env | extra
        try:
            loaded = load_config(config, env=env, database_url=db)
        except ValueError:
            continue  # a fragment of a config, or one naming places this machine lacks
        compared += 1
        place = fastread.store_place(str(config), db, env)
        url = make_url(loaded.database_url)
        if url.get_backend_name() != "sqlite" or url.query:
            assert place is None, (where, extra, db)
            continue
        assert place == (Path(str(url.database)), loaded.state_dir, loaded.workspace), (
            where,
            extra,
            db,
        )
    if not compared:
        pytest.skip(f"{where} is not a whole configuration")


@pytest.mark.parametrize("width", [200, 80, 41, 30])
@pytest.mark.parametrize(
    "rows",
    [
        [],
        [["a", "b", "c"]],
        [["x" * 12, "", "zz"], ["1", "two", "3"]],
        [["é", "b", "c"]],
        [["tab\there", "b", "c"]],
    ],
)
def test_plain_tables_are_what_rich_prints(width: int, rows: list[list[str]]) -> None:
    by_rich = Console(file=io.StringIO(), width=width)
    assert not by_rich.is_terminal and by_rich.color_system is None
    table = Table(Column("one", min_width=8), "two", "three", title="things")
    for row in rows:
        table.add_row(*row)
    by_rich.print(table)
    plain = plain_table(width, "things", ("one", "two", "three"), rows, min_widths={0: 8})
    expected = by_rich.file.getvalue()  # type: ignore[attr-defined]
    assert plain is None or plain == expected
    if width == 200 and all(cell.isascii() and cell.isprintable() for r in rows for cell in r):
        assert plain is not None


class _Stream(io.StringIO):
    def __init__(self, *, tty: bool, encoding: str) -> None:
        super().__init__()
        self.tty, self._encoding = tty, encoding

    def isatty(self) -> bool:
        return self.tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


@pytest.mark.parametrize(
    ("tty", "encoding", "env"),
    [
        (False, "utf-8", {}),
        (True, "utf-8", {}),
        (False, "ascii", {}),
        (False, "utf-8", {"COLUMNS": "100"}),
        (False, "utf-8", {"FORCE_COLOR": "1"}),
        (False, "utf-8", {"TTY_COMPATIBLE": "1"}),
        (False, "utf-8", {"NO_COLOR": "1", "TERM": "dumb"}),
    ],
)
def test_a_plain_width_only_where_rich_prints_plain_text(
    tty: bool, encoding: str, env: dict[str, str]
) -> None:
    """Where :func:`plain_width` answers, rich's console there is plain and that wide."""
    stream = _Stream(tty=tty, encoding=encoding)
    width = plain_width(stream, env)
    if width is None:
        assert tty or encoding != "utf-8" or env.keys() - {"NO_COLOR", "TERM"}
        return
    rich = Console(file=stream, width=width, _environ=env)
    assert not rich.is_terminal and rich.color_system is None
    assert rich.encoding.startswith("utf")
    assert not tty and encoding == "utf-8"


def test_the_configuration_package_exports_every_name_lazily() -> None:
    import plugbox.host.config as config

    assert sorted(config.__all__) == sorted(config._HOMES)
    for name in config.__all__:
        assert getattr(config, name) is not None


def test_the_default_run_uid_is_the_sandboxs() -> None:
    from plugbox.host.config.models import DEFAULT_RUN_UID
    from plugbox.sandbox.run_identity import RUN_ID

    assert DEFAULT_RUN_UID == RUN_ID
