"""Job- and plugin-provided text reaches the operator's terminal as text, in every CLI view.

Two sources, both real: records written into the run store through the store API (what any job
could have put there), and a plugin installed in a ``plugin_paths`` directory whose manifest and
job are hostile. Each view is driven through the installed ``plugbox`` script.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plugbox.host.config import ensure_state_dir, load_config
from plugbox.host.store import RunRecord, SqlRunStore
from plugbox.sandbox import Access, ErrorInfo, Event, LogEntry

from .test_cli import plugbox

# What a hostile job writes, and how each must appear.
MARKUP_CLOSE = "[/]"
MARKUP_STYLE = "[bold red]x"
OSC52 = "\x1b]52;c;aGk=\x07"  # write "hi" into the clipboard
ERASE = "\x1b[2K"  # erase the current line
TITLE = "\x1b]0;pwned\x07"  # retitle the window
C1_CSI = "\x9b"  # one-byte CSI
RLO = "\u202e"  # right-to-left override
HOSTILE = f"{MARKUP_CLOSE} {MARKUP_STYLE} {OSC52} {ERASE} {TITLE} {C1_CSI}31m {RLO}txt.exe"
SHOWN = [
    MARKUP_CLOSE,
    MARKUP_STYLE,
    "\\x1b]52;c;aGk=\\x07",
    "\\x1b[2K",
    "\\x1b]0;pwned\\x07",
    "\\x9b31m",
    "\\u202etxt.exe",
]
RAW = ["\x1b", "\x07", "\x9b", "\u202e"]


def assert_inert(out: str) -> None:
    """Every hostile piece is shown, escaped; no control character reached the terminal."""
    for piece in SHOWN:
        assert piece in out, f"{piece!r} is not shown in:\n{out}"
    for char in RAW:
        assert char not in out, f"{char!r} reached the terminal"


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = tmp_path / "plugbox.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\nworkspace = "{workspace}"\n')
    return config, workspace


def _store_hostile_run(config_path: Path, *, result: Any = None) -> str:
    config = load_config(config_path, env={"HOME": str(config_path.parent)})
    ensure_state_dir(config)
    now = datetime.now(UTC)
    record = RunRecord(
        run_id="0123456789abcdef0123456789abcdef",
        job="example:hello-cron",
        status="failed",
        trigger="manual",
        scheduled_at=now - timedelta(seconds=1),
        started_at=now - timedelta(seconds=1),
        finished_at=now,
        duration_ms=1000,
        result=result if result is not None else {"note": HOSTILE},
        error=ErrorInfo(type=f"Boom{ERASE}", message=HOSTILE, traceback=f"Traceback\n  {HOSTILE}"),
        kill_reason=HOSTILE,
        log=(LogEntry(level="info", message=HOSTILE, fields={"k": HOSTILE}, at=0.0),),
        events=(Event(name=HOSTILE, data={"d": HOSTILE}, at=0.0),),
        output=f"out {HOSTILE}\nline two\n",
        denials=(
            Access(operation="read", target=HOSTILE, allowed=False, rule=HOSTILE, reason=HOSTILE),
        ),
        enforcement={"mode": HOSTILE, "fs": "kernel"},
    )
    with SqlRunStore(config.database_url) as store:
        store.add(record)
    return record.run_id


def test_runs_show_prints_a_hostile_record_as_text(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    run_id = _store_hostile_run(config)
    out = plugbox(config, "runs", "show", run_id)
    assert_inert(out.stdout)
    for where in ("log info:", "event ", "denied read", "output:", "result:", "Boom\\x1b[2K:"):
        assert where in out.stdout, where
    assert "Traceback" in out.stdout and "line two" in out.stdout


def test_runs_list_prints_hostile_text_as_text(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    run_id = _store_hostile_run(config)
    out = plugbox(config, "runs", "list")
    assert run_id in out.stdout
    for char in RAW:
        assert char not in out.stdout


def test_json_is_valid_and_terminal_safe_even_with_nan(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    run_id = _store_hostile_run(config, result={"ratio": float("nan"), "note": HOSTILE})
    for args in (("runs", "show", run_id), ("runs", "list")):
        out = plugbox(config, *args, "--json").stdout
        data = strict_json(out)
        for char in RAW:
            assert char not in out
        shown = data if args[1] == "show" else data["runs"][0]
        assert shown["result"] == {"ratio": None, "note": HOSTILE}
        assert shown["error"]["message"] == HOSTILE
    human = plugbox(config, "runs", "show", run_id).stdout
    assert '"ratio": null' in human


HOSTILE_PLUGIN = """
    import sys

    from plugbox.sdk import define_manifest, hookimpl, job

    HOSTILE = {hostile!r}

    @job("shout", description=HOSTILE, timeout="20s")
    def shout(ctx):
        print(HOSTILE)
        print(HOSTILE, file=sys.stderr)
        ctx.logger.info(HOSTILE, field=HOSTILE)
        ctx.emit("evt" + HOSTILE, {{"d": HOSTILE}})
        return {{"note": HOSTILE}}

    @job("crash", timeout="20s")
    def crash(ctx):
        raise RuntimeError(HOSTILE)

    manifest = define_manifest(
        id="shouty", version="1.0", name="Shouty " + HOSTILE, description=HOSTILE,
        jobs=[shout, crash],
    )

    @hookimpl
    def plugbox_manifest():
        return manifest
"""


@pytest.fixture
def hostile_plugin(tmp_path: Path, setup: tuple[Path, Path]) -> Path:
    """``setup``'s config with a plugin whose manifest and jobs say hostile things."""
    config, _ = setup
    site = tmp_path / "site"
    info = site / "plugbox_shouty-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugbox-shouty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\nshouty = plugbox_shouty\n")
    source = textwrap.dedent(HOSTILE_PLUGIN).format(hostile=HOSTILE)
    (site / "plugbox_shouty.py").write_text(source)
    config.write_text(config.read_text() + f'plugin_paths = ["{site}"]\n')
    return config


def test_jobs_run_prints_what_a_job_wrote_as_text(hostile_plugin: Path) -> None:
    out = plugbox(hostile_plugin, "jobs", "run", "shouty:shout")
    assert_inert(out.stdout)
    assert "log info:" in out.stdout and "event evt" in out.stdout
    record = strict_json(plugbox(hostile_plugin, "jobs", "run", "shouty:shout", "--json").stdout)
    assert record["result"] == {"note": HOSTILE}
    assert [e["name"] for e in record["events"]] == ["evt" + HOSTILE]

    crashed = plugbox(hostile_plugin, "jobs", "run", "shouty:crash", check=False)
    assert crashed.returncode == 1, crashed.stderr
    assert_inert(crashed.stdout)
    assert "RuntimeError: [/]" in crashed.stdout
    shown = plugbox(hostile_plugin, "runs", "list").stdout
    assert "shouty:crash" in shown and "failed" in shown


def test_manifest_text_is_inert_in_listings(hostile_plugin: Path) -> None:
    listed = plugbox(hostile_plugin, "plugins", "list").stdout
    assert "shouty" in listed and "plugbox-shouty" in listed
    inspected = plugbox(hostile_plugin, "plugins", "inspect", "shouty").stdout
    assert_inert(inspected)
    jobs = plugbox(hostile_plugin, "jobs", "list").stdout
    assert "shouty:shout" in jobs
    for char in RAW:
        assert char not in jobs
    data = strict_json(plugbox(hostile_plugin, "jobs", "list", "--json").stdout)
    assert {j["job"]: j["description"] for j in data["jobs"]}["shouty:shout"] == HOSTILE


def test_glob_classes_in_permissions_are_not_markup(setup: tuple[Path, Path]) -> None:
    """``[abc]`` in a declared glob looks like a rich style tag; inspect shows it as written."""
    config, _ = setup
    config.write_text(
        config.read_text()
        + "[plugins.example.permissions]\n"
        + 'fs = [{ mode = "readWrite", allow = [".plugbox/[e]xample/"] }]\n'
    )
    out = plugbox(config, "plugins", "inspect", "example").stdout
    assert ".plugbox/[e]xample/" in out
