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
from typing import TYPE_CHECKING, Any, NoReturn

import click

from plugbox.host.cli_plain import PIPED_WIDTH
from plugbox.host.cli_text import dumps, inert

if TYPE_CHECKING:
    from rich.console import Console

    from plugbox.host.config import HostConfig
    from plugbox.host.services import Host

#: stdout and stderr as rich consoles, made on first use (``__getattr__``): a command that
#: prints a plain table (``runs list`` into a pipe) never imports rich.
console: Console
errors: Console

STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "timeout": "red",
    "killed": "red",
    "running": "cyan",
}


def __getattr__(name: str) -> Any:
    if name not in ("console", "errors"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    if name == "console":
        # Piped or redirected, rich would assume 80 columns and cut job ids and times short; a
        # log file or `| grep` wants whole values, so tables get room there ($COLUMNS wins).
        piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
        made = Console(width=PIPED_WIDTH if piped else None)
    else:
        made = Console(stderr=True)
    globals()[name] = made
    return made


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
    # Here, not at the top: `plugbox runs --help` should not pay for the configuration models.
    from plugbox.host.config import ConfigError, load_config
    from plugbox.host.config.state import untrusted_code_paths

    try:
        config = load_config(ctx.obj.get("config"), database_url=ctx.obj.get("db"))
    except ConfigError as err:
        fail(str(err))
    problems = untrusted_code_paths(config.workspace, sys.path)
    if problems:
        fail(
            "plugbox would import code from the workspace, where jobs may write:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    return config


@contextmanager
def open_host(ctx: click.Context) -> Iterator[Host]:
    from plugbox.host.config import ConfigError
    from plugbox.host.services import Host, UnknownJobError

    config = config_of(ctx)
    host = Host(config)
    try:
        yield host
    except LookupError as err:
        # An unknown job or run is the operator's typo (exit 2), any other LookupError a bug.
        # The store's error is looked up only if the store was loaded: importing it means
        # importing SQLAlchemy, which a command that never opened the store does not pay for.
        store = sys.modules.get("plugbox.host.store")
        expected = (UnknownJobError, getattr(store, "RunLookupError", UnknownJobError))
        if not isinstance(err, expected):
            raise
        fail(str(err).strip("'\""))
    except ConfigError as err:
        # Found only once the host starts on something, e.g. a webhook's secret variable unset.
        fail(str(err))
    except Exception as err:
        # The store's start-up errors (server unreachable, schema too new) are
        # the operator's to fix; looked up only if the store was loaded, as above.
        store = sys.modules.get("plugbox.host.store")
        operator_errors = tuple(
            getattr(store, name)
            for name in ("StoreUnavailableError", "SchemaTooNewError")
            if store is not None and hasattr(store, name)
        )
        if not isinstance(err, operator_errors):
            raise
        fail(str(err))  # the URL in it has its password masked
    finally:
        host.close()


def report_problems(host: Host) -> None:
    """Plugins that were skipped, on stderr; the reasons quote plugin code, so inert."""
    for problem in host.problems:
        click.echo(f"skipped {inert(problem)}", err=True)
    if any(problem.remembered for problem in host.problems):
        click.echo(
            "  (remembered from when these versions were first seen, not imported again;"
            " fixed the cause without upgrading? run `plugbox plugins reload`)",
            err=True,
        )


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
