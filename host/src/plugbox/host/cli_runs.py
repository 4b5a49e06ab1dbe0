"""``plugbox runs list|show``, and the run record as a person reads it (``jobs run`` prints it too).

Almost everything in a record was written by a job, so every string goes through
:mod:`plugbox.host.cli_text`: printed as inert text, never as rich markup or terminal controls.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import click

from plugbox.host import cli_common
from plugbox.host.cli_common import STATUS_STYLE, open_host, print_json
from plugbox.host.cli_plain import plain_table, plain_width
from plugbox.host.cli_text import dumps, inert, text

if TYPE_CHECKING:
    from datetime import datetime

    from plugbox.host.store import RunRecord

#: Characters of output shown by ``runs show``; ``--json`` has all that was kept.
OUTPUT_TAIL_CHARS = 2_000
_ENFORCEMENT_KEYS = ("fs", "net", "env", "shell", "cpu", "memory", "processes")


@click.group()
def runs() -> None:
    """Run history."""


@runs.command("list")
@click.option("--job", help="only runs of PLUGIN:JOB")
@click.option("--status", help="only runs with this status")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="show at most this many",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs_list(
    ctx: click.Context, job: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List recent runs, newest first."""
    if not as_json:
        # The table, straight from a SQLite store when it may be (ADR 0032); --json shows whole
        # records, which only the record model writes.
        from plugbox.host import fastread

        database = fastread.locate_store(ctx.obj.get("config"), ctx.obj.get("db"))
        lines = None
        if database is not None:
            lines = fastread.recent_runs(database, job=job, status=status, limit=limit)
        if lines is not None:
            print_runs(lines)
            return
    from plugbox.host.store.records import SUMMARY_EXCLUDED

    with open_host(ctx) as host:
        records = host.store.list(job=job, status=status, limit=limit)  # type: ignore[arg-type]
        if as_json:
            print_json(
                {
                    "runs": [
                        r.model_dump(mode="json", exclude=set(SUMMARY_EXCLUDED)) for r in records
                    ]
                }
            )
            return
        print_runs(records)


class _RunRow(Protocol):
    """What a row of ``runs list`` shows: a :class:`RunRecord` or a fast-path ``RunLine``."""

    @property
    def run_id(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def trigger(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def duration_ms(self) -> int | None: ...


def print_runs(rows: Iterable[_RunRow]) -> None:
    """The ``runs list`` table; the full and the fast path both print through here."""
    lines = [
        (
            inert(r.run_id),
            inert(r.job),
            inert(r.status),
            inert(r.trigger),
            str(r.attempt),
            r.started_at.isoformat(timespec="seconds") if r.started_at else "-",
            str(r.duration_ms or "-"),
        )
        for r in rows
    ]
    headers = ("run", "job", "status", "trigger", "attempt", "started", "ms")
    # The id is what `runs show` takes: never cut it short, fold it if the terminal is narrow.
    plain = plain_table(plain_width(), "runs", headers, lines, min_widths={0: 32})
    if plain is not None:
        sys.stdout.write(plain)  # rich never imported (ADR 0032)
        return
    from rich.table import Column, Table
    from rich.text import Text

    table = Table(Column("run", overflow="fold", min_width=32), *headers[1:], title="runs")
    for line in lines:
        status = line[2]
        # What a job wrote is Text (inert already), never markup; numbers and times are ours.
        table.add_row(
            Text(line[0]),
            Text(line[1]),
            Text(status, STATUS_STYLE.get(status, "white")),
            Text(line[3]),
            *line[4:],
        )
    cli_common.console.print(table)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run in full: result, error, log, events, resources, enforcement."""
    from plugbox.host.cli_webhooks import print_deliveries

    with open_host(ctx) as host:
        record = host.store.get(host.store.resolve_id(run_id))
        if as_json:
            # Exactly the run record, as GET /runs/{id} returns it; its webhook deliveries are
            # `plugbox webhooks log --run ID --json`.
            print_json(record.model_dump(mode="json"))
            return
        print_record(record)
        sent = host.deliveries.list(run_id=record.run_id)
        if sent:
            print_deliveries(sent)


def print_record(record: RunRecord) -> None:
    """One run for a person: what happened first, then what the job said, then what it cost."""
    from rich.text import Text

    show = cli_common.console.print
    head = Text.assemble(
        text(record.job, "bold"),
        " run ",
        text(record.run_id),
        ": ",
        text(record.status, STATUS_STYLE.get(record.status, "white")),
    )
    if record.kill_reason:
        head.append_text(text(f" ({record.kill_reason})"))
    if record.reason:
        head.append_text(text(f" ({record.reason})"))
    show(head)
    show(
        f"  trigger {record.trigger}, attempt {record.attempt}, {record.duration_ms} ms, "
        f"cpu {record.cpu_ms} ms, peak {record.peak_memory_mb} MB",
        markup=False,
        highlight=False,
    )
    if record.result is not None:
        show(text(f"  result: {dumps(record.result)}"), highlight=False)
    if record.error is not None:
        show(text(f"  {record.error.type}: {record.error.message}", "red"))
        if record.error.traceback:
            show(text(record.error.traceback), highlight=False)
    for entry in record.log:
        fields = f" {dumps(entry.fields)}" if entry.fields else ""
        show(text(f"  log {entry.level}: {entry.message}{fields}"), highlight=False)
    if record.log_truncated:
        show(text("  (log cut at its limit; the rest was not kept)", "dim"))
    for event in record.events:
        show(text(f"  event {event.name}: {dumps(event.data)}"), highlight=False)
    for denial in record.denials:
        reason = f" ({denial.reason})" if denial.reason else ""
        show(
            text(
                f"  denied {denial.operation} {denial.target!r} by {denial.rule}{reason}", "yellow"
            ),
            highlight=False,
        )
    if record.output:
        show(text("  output:"), text(record.output[-OUTPUT_TAIL_CHARS:]), highlight=False)
    if record.enforcement:
        levels = ", ".join(
            f"{key}={record.enforcement[key]}"
            for key in _ENFORCEMENT_KEYS
            if key in record.enforcement
        )
        show(text(f"  enforcement ({record.enforcement.get('mode')}): {levels}", "dim"))
        bindings = record.enforcement.get("bindings")
        for bound in bindings if isinstance(bindings, list) else []:
            if isinstance(bound, dict):
                show(text(f"  bound: {bound.get('rule')} = {bound.get('value')}", "dim"))
