"""What every ``plugbox`` view shares: the consoles, JSON output, errors, and opening the host.

Exit status: 0 when the command did what was asked; 1 when a run did not succeed; 2 for bad
input (an unknown job, a bad config file), with a message that says what to do.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from plugbox.host.cli_text import dumps, inert
from plugbox.host.config import ConfigError, HostConfig, load_config
from plugbox.host.config.state import untrusted_code_paths
from plugbox.host.services import Host, UnknownJobError
from plugbox.host.store import RunLookupError

# Piped or redirected, rich would assume 80 columns and cut job ids and times short; a log file
# or `| grep` wants whole values, so tables get room to spare there ($COLUMNS still wins).
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
console = Console(width=_PIPED_WIDTH)
errors = Console(stderr=True)

STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "timeout": "red",
    "killed": "red",
    "running": "cyan",
}


def print_json(data: Any) -> None:
    """``--json`` output: always valid JSON, ASCII only (see :func:`plugbox.host.cli_text.dumps`)."""
    click.echo(dumps(data, indent=2))


def fail(message: str, code: int = 2) -> NoReturn:
    # Plain text, never wrapped: people copy these lines into searches and bug reports. Inert,
    # because a message may quote a job's or a plugin's words.
    click.echo(f"error: {inert(message)}", err=True)
    sys.exit(code)


def config_of(ctx: click.Context) -> HostConfig:
    """The configuration ``--config`` (or the environment, or ./plugbox.toml) names, checked
    also against this process: a host never imports code from where its jobs may write."""
    try:
        config = load_config(ctx.obj.get("config"))
    except ConfigError as err:
        fail(str(err))
    problems = untrusted_code_paths(config, sys.path)
    if problems:
        fail(
            "plugbox would import code from the workspace, where jobs may write:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    return config


@contextmanager
def open_host(ctx: click.Context) -> Iterator[Host]:
    config = config_of(ctx)
    host = Host(config)
    try:
        yield host
    except (UnknownJobError, RunLookupError, ConfigError) as err:
        fail(str(err).strip("'\""))
    finally:
        host.close()


def report_problems(host: Host) -> None:
    """Plugins that were skipped, on stderr; the reasons quote plugin code, so inert."""
    for problem in host.problems:
        click.echo(f"skipped {inert(problem)}", err=True)


def signal_serve(state_dir: Path) -> int | None:
    """SIGHUP the ``plugbox serve`` that owns ``state_dir`` (it re-reads plugins and pause
    state); its pid, or None when none runs."""
    from plugbox.host.daemon import PID_FILE

    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return None
    return pid


def nudge_serve(host: Host) -> bool:
    """Make a running ``plugbox serve`` re-read pause state now; False if none runs."""
    return signal_serve(host.config.state_dir) is not None
