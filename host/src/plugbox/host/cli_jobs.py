"""``plugbox jobs list|next|run|trigger|pause|resume``: the jobs of the installed plugins.

Schedules, descriptions and ids come from manifests, which plugins wrote: they are printed as
inert text (:mod:`plugbox.host.cli_text`).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from plugbox.host.cli_common import (
    console,
    errors,
    fail,
    nudge_serve,
    open_host,
    print_json,
    report_problems,
)
from plugbox.host.cli_plain import plain_table, plain_width
from plugbox.host.cli_runs import print_record
from plugbox.host.cli_text import inert, text

if TYPE_CHECKING:
    from plugbox.host.services import Host
    from plugbox.host.store import RunRecord
    from plugbox.sdk import JobSpec


@click.group()
def jobs() -> None:
    """Jobs of the installed plugins."""


def _schedule_for(host: Host, plugin_id: str, spec: JobSpec) -> tuple[str | None, str]:
    override = host.config.job_override(plugin_id, spec.id)
    schedule = override.schedule if override and override.schedule else spec.schedule
    timezone = override.timezone if override and override.timezone else spec.timezone
    return schedule, timezone


def _next_fires(host: Host, plugin_id: str, spec: JobSpec, n: int) -> list[datetime] | str:
    from plugbox.sdk import ScheduleError, parse_schedule

    schedule, timezone = _schedule_for(host, plugin_id, spec)
    if schedule is None:
        return []
    try:
        parsed = parse_schedule(schedule, timezone, dict(os.environ))
    except ScheduleError as err:
        return str(err)
    fires = []
    for fire in parsed.iter_after(datetime.now(UTC)):
        fires.append(fire)
        if len(fires) >= n:
            break
    return fires


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_list(ctx: click.Context, as_json: bool) -> None:
    """List every job with its schedule, next fire and state."""
    from plugbox.host import fastread

    with open_host(ctx) as host:
        # From a SQLite store through sqlite3 when it may be: SQLAlchemy is most of what this
        # command would import otherwise (ADR 0032).
        database = fastread.checked_store(host.config.database_url, host.config.state_dir)
        paused = None if database is None else fastread.paused_jobs(database)
        if paused is None:
            paused = host.store.paused_jobs()
        rows: list[dict[str, Any]] = []
        for plugin in host.plugins:
            for spec in plugin.manifest.jobs:
                key = f"{plugin.manifest.id}:{spec.id}"
                schedule, timezone = _schedule_for(host, plugin.manifest.id, spec)
                nxt = _next_fires(host, plugin.manifest.id, spec, 1)
                override = host.config.job_override(plugin.manifest.id, spec.id)
                enabled = (
                    spec.enabled
                    if override is None or override.enabled is None
                    else override.enabled
                )
                rows.append(
                    {
                        "job": key,
                        "schedule": schedule,
                        "timezone": timezone,
                        "next": nxt[0].isoformat()
                        if isinstance(nxt, list) and nxt
                        else (nxt if isinstance(nxt, str) else None),
                        "enabled": enabled,
                        "paused": key in paused,
                        "description": spec.description,
                    }
                )
        if as_json:
            print_json({"jobs": rows})
            return
        headers = ("job", "schedule", "timezone", "next fire", "state", "description")
        cells = [
            (
                inert(row["job"]),
                inert(row["schedule"] or "manual"),
                inert(row["timezone"]),
                inert(row["next"] or "-"),
                "paused" if row["paused"] else ("enabled" if row["enabled"] else "disabled"),
                inert(row["description"]),
            )
            for row in rows
        ]
        plain = plain_table(plain_width(), "jobs", headers, cells)
        if plain is not None:
            sys.stdout.write(plain)  # rich would add nothing (ADR 0032)
        else:
            from rich.table import Table

            table = Table(*headers, title="jobs")
            for job, schedule, timezone, nxt, state, description in cells:
                # Inert already; Text, so that nothing a plugin wrote is read as markup.
                table.add_row(
                    Text(job), Text(schedule), Text(timezone), Text(nxt), state, Text(description)
                )
            console.print(table)
        report_problems(host)


@jobs.command("next")
@click.argument("job")
@click.option(
    "-n",
    "count",
    default=5,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="how many fire times to show",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_next(ctx: click.Context, job: str, count: int, as_json: bool) -> None:
    """Show the next N fire times of PLUGIN:JOB."""
    with open_host(ctx) as host:
        plugin, spec = host.job(job)
        fires = _next_fires(host, plugin.manifest.id, spec, count)
        if isinstance(fires, str):
            fail(f"{job}: {fires}")
        schedule, timezone = _schedule_for(host, plugin.manifest.id, spec)
        if as_json:
            print_json(
                {
                    "job": job,
                    "schedule": schedule,
                    "timezone": timezone,
                    "next": [f.isoformat() for f in fires],
                }
            )
            return
        if not fires:
            console.print(text(f"{job} has no schedule: it runs only when triggered"))
            return
        console.print(Text.assemble(text(job), "  ", text(f"{schedule} ({timezone})", "dim")))
        for fire in fires:
            console.print(
                Text.assemble(f"  {fire.isoformat()}  ", (fire.astimezone(UTC).isoformat(), "dim"))
            )


@jobs.command("run")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_run(ctx: click.Context, job: str, as_json: bool) -> None:
    """Run PLUGIN:JOB now, in the sandbox, in the workspace; record it and print the run."""
    from plugbox.host.execute import RunPlan

    with open_host(ctx) as host:
        plugin, spec = host.job(job)
        previous = host.store.tallies([job]).get(job)
        run_count = (previous.total if previous else 0) + 1
        plan = RunPlan(plugin=plugin, job_id=spec.id, trigger="manual", run_count=run_count)

        def run() -> RunRecord:
            return host.execute(plan)

        if as_json:
            record = run()
            print_json(record.model_dump(mode="json"))
        else:
            with errors.status(text(f"running {job} in the sandbox…")):
                record = run()
            print_record(record)
        if record.status != "success":
            sys.exit(1)


@jobs.command("trigger")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_trigger(ctx: click.Context, job: str, as_json: bool) -> None:
    """Queue a run of PLUGIN:JOB for `plugbox serve`: the first replica with a free worker runs
    it (unlike `jobs run`, which runs it here and now)."""
    from plugbox.host.manual import queue_manual_run
    from plugbox.host.operations import OperationRefusedError

    with open_host(ctx) as host:
        try:
            record = queue_manual_run(host, job, requested_by=None)
        except OperationRefusedError as err:  # disabled or paused: say which and how to undo
            fail(str(err))
    if as_json:
        print_json(record.model_dump(mode="json"))
        return
    click.echo(
        f"{inert(job)} queued as run {record.run_id}; a running `plugbox serve` starts it"
        f" (`plugbox runs show {record.run_id}` follows it)"
    )


def _set_paused(ctx: click.Context, job: str, paused: bool) -> None:
    with open_host(ctx) as host:
        host.job(job)
        host.store.set_paused(job, paused)
        note = " (the running plugbox serve was told)" if nudge_serve(host) else ""
        click.echo(f"{inert(job)} {'paused' if paused else 'resumed'}{note}")


@jobs.command("pause")
@click.argument("job")
@click.pass_context
def jobs_pause(ctx: click.Context, job: str) -> None:
    """Stop PLUGIN:JOB from firing until resumed (survives restarts)."""
    _set_paused(ctx, job, True)


@jobs.command("resume")
@click.argument("job")
@click.pass_context
def jobs_resume(ctx: click.Context, job: str) -> None:
    """Let a paused PLUGIN:JOB fire again."""
    _set_paused(ctx, job, False)
