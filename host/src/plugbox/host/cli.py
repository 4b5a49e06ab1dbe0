"""The ``plugbox`` command line. Every listing (and ``jobs run``) takes ``--json``.

Exit status: 0 when the command did what was asked; 1 when a run did not succeed; 2 for bad
input (an unknown job, a bad config file), with a message that says what to do.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Column, Table

from plugbox.host.config import ConfigError, load_config
from plugbox.host.execute import RunPlan
from plugbox.host.scaffold import ScaffoldError, create_project
from plugbox.host.services import Host, UnknownJobError
from plugbox.host.store import RunLookupError, RunRecord
from plugbox.sandbox import fs_roots
from plugbox.sandbox.doctor import diagnose
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunContext, RunRequest, run_permissions
from plugbox.sdk import JobSpec, ScheduleError, parse_schedule
from plugbox.sdk.permissions import Permissions

_LEVEL_STYLE = {"kernel": "green", "best-effort": "yellow", "advisory": "red"}
_STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "timeout": "red",
    "killed": "red",
    "running": "cyan",
}
F = TypeVar("F", bound=Callable[..., Any])

# Piped or redirected, rich would assume 80 columns and cut job ids and times short; a log file
# or `| grep` wants whole values, so tables get room to spare there ($COLUMNS still wins).
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
console = Console(width=_PIPED_WIDTH)
errors = Console(stderr=True)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _fail(message: str, code: int = 2) -> NoReturn:
    # Plain text, never wrapped: people copy these lines into searches and bug reports.
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _host(ctx: click.Context) -> Iterator[Host]:
    try:
        config = load_config(ctx.obj.get("config"))
    except ConfigError as err:
        _fail(str(err))
    host = Host(config)
    try:
        yield host
    except (UnknownJobError, RunLookupError) as err:
        _fail(str(err).strip("'\""))
    finally:
        host.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="plugbox.toml to use (default: $PLUGBOX_CONFIG or ./plugbox.toml)",
)
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """plugbox: scheduled plugin jobs in a permission sandbox."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


# -- doctor ---------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def doctor(as_json: bool) -> None:
    """Show which enforcement layers work on this machine, and what each capability gets."""
    report = diagnose()
    if as_json:
        click.echo(report.to_json())
        return
    console.print(f"[bold]plugbox doctor[/bold] — {report.system}")
    layers = Table("layer", "active", "detail", title="enforcement layers")
    for layer in report.layers:
        layers.add_row(
            layer.name, "[green]yes[/green]" if layer.active else "[red]no[/red]", layer.detail
        )
    console.print(layers)
    levels = Table("capability", "protected by", title="per capability")
    for name, level in report.capabilities.items():
        levels.add_row(name, f"[{_LEVEL_STYLE[level]}]{level}[/]")
    console.print(levels)
    console.print(
        "kernel = the OS refuses · best-effort = watched and killed · advisory = proxies only"
    )
    if any(not layer.active for layer in report.layers):
        console.print(
            "Runs still work without the missing layers; every run record says what protected it."
        )
    for hint in report.hints:
        console.print(f"[dim]hint (speed, not safety): {hint}[/dim]")


# -- new ----------------------------------------------------------------------------------
@main.command()
@click.argument("name")
@click.option(
    "-d",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="where to create the NAME folder (default: the current directory)",
)
def new(name: str, directory: Path) -> None:
    """Create a plugin project in ./NAME: one job, its manifest, passing tests, a README.

    NAME becomes the plugin id (acme-notes: jobs are addressed acme-notes:JOB), the import
    package (acme_notes) and the distribution (plugbox-acme-notes). Use lowercase letters,
    digits and - or _ between them. Nothing that exists is ever overwritten.
    """
    try:
        project = create_project(name, directory)
    except ScaffoldError as err:
        _fail(str(err))
    names = project.names
    click.echo(f"created plugin {names.plugin_id} in {project.path}/")
    click.echo(f"  plugin id     {names.plugin_id} (jobs are addressed {names.plugin_id}:JOB)")
    click.echo(f"  package       {names.package} (the job is in src/{names.package}/plugin.py)")
    click.echo(f"  distribution  {names.distribution}")
    click.echo("next:")
    click.echo(f"  cd {project.path}")
    click.echo('  pytest                         # needs: pip install "plugbox-sdk[testing]"')
    click.echo("  pip wheel --no-deps . -w dist  # then pip install the wheel into a host")


# -- serve --------------------------------------------------------------------------------
@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the scheduler in the foreground: fire jobs on their schedules until Ctrl-C.

    Ctrl-C or SIGTERM stops firing, waits `shutdown_grace` for runs in flight, then cancels them.
    SIGHUP re-scans the installed plugins. Decisions are logged as JSON lines on stderr.
    """
    from plugbox.host.daemon import Daemon

    with _host(ctx) as host:
        sys.exit(Daemon(host).run())


# -- plugins ------------------------------------------------------------------------------
@main.group()
def plugins() -> None:
    """Installed plugins and their permissions."""


def _report_problems(host: Host) -> None:
    for problem in host.problems:
        click.echo(f"skipped {problem}", err=True)


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins; broken ones are reported with the reason and skipped."""
    with _host(ctx) as host:
        loaded = host.discovery.plugins
        if as_json:
            _json(
                {
                    "plugins": [
                        {
                            "id": p.manifest.id,
                            "version": p.manifest.version,
                            "name": p.manifest.name,
                            "distribution": p.entry_point.dist,
                            "enabled": host.config.plugin_enabled(p.manifest.id),
                            "jobs": [job.id for job in p.manifest.jobs],
                        }
                        for p in loaded
                    ],
                    "problems": [
                        {
                            "entry_point": pr.entry_point.name,
                            "distribution": pr.entry_point.dist,
                            "kind": pr.kind,
                            "reason": pr.reason,
                        }
                        for pr in host.problems
                    ],
                }
            )
            return
        table = Table("plugin", "version", "distribution", "jobs", "enabled", title="plugins")
        for p in loaded:
            enabled = host.config.plugin_enabled(p.manifest.id)
            table.add_row(
                p.manifest.id,
                p.manifest.version,
                p.entry_point.dist,
                str(len(p.manifest.jobs)),
                "yes" if enabled else "[yellow]disabled[/]",
            )
        console.print(table)
        _report_problems(host)


def _permissions_json(permissions: Permissions) -> dict[str, Any]:
    return permissions.model_dump(mode="json", exclude_defaults=True)


@plugins.command("reload")
@click.pass_context
def plugins_reload(ctx: click.Context) -> None:
    """Ask the running `plugbox serve` to re-scan plugins (runs in flight are not touched)."""
    from plugbox.host.daemon import PID_FILE

    try:
        config = load_config(ctx.obj.get("config"))
    except ConfigError as err:
        _fail(str(err))
    pid = _signal_serve(config.state_dir)
    if pid is None:
        _fail(
            f"no running `plugbox serve` found for this configuration "
            f"({config.state_dir / PID_FILE}); start it first"
        )
    console.print(f"asked plugbox serve (pid {pid}) to reload its plugins")


@plugins.command("inspect")
@click.argument("plugin_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_inspect(ctx: click.Context, plugin_id: str, as_json: bool) -> None:
    """Show a plugin's declared permissions, the operator's grants, and what each job gets."""
    with _host(ctx) as host:
        plugin = host.plugin(plugin_id)
        manifest = plugin.manifest
        grants = host.config.grants_for(manifest.id)
        jobs: dict[str, dict[str, Any]] = {}
        for spec in manifest.jobs:
            override = host.config.job_override(manifest.id, spec.id)
            declared = run_permissions(
                manifest, spec.id, quotas=override.quotas if override else None
            )
            read_roots, write_roots = fs_roots.workspace_roots(declared, grants)
            in_force = RunRequest(
                handler=spec.handler,
                workspace=str(host.config.workspace),
                context=RunContext(
                    job_id=spec.id,
                    plugin_id=manifest.id,
                    plugin_version=manifest.version,
                    run_id="-",
                ),
                permissions=declared,
                grants=grants,
            ).quotas(DEFAULT_QUOTAS)
            jobs[spec.id] = {
                "declared": _permissions_json(declared),
                "granted": [_permissions_json(g) for g in grants],
                "effective": "declared ∩ every grant" if grants else "declared",
                "quotas_in_force": in_force.model_dump(),
                "kernel_read_roots": [r or "." for r in read_roots],
                "kernel_write_roots": [r or "." for r in write_roots],
            }
        data = {
            "plugin": manifest.id,
            "version": manifest.version,
            "distribution": plugin.entry_point.dist,
            "plugin_permissions": _permissions_json(manifest.permissions),
            "jobs": jobs,
        }
        if as_json:
            _json(data)
            return
        console.print(
            f"[bold]{manifest.id}[/bold] {manifest.version} ({plugin.entry_point.dist}) — {manifest.name}"
        )
        if grants:
            console.print(
                f"operator grants narrow this plugin: effective = declared ∩ {len(grants)} grant(s)"
            )
        for job_id, info in jobs.items():
            table = Table("field", "declared", title=f"{manifest.id}:{job_id}", show_lines=True)
            for key, value in info["declared"].items():
                table.add_row(key, json.dumps(value, indent=1))
            for n, granted in enumerate(info["granted"]):
                table.add_row(f"operator grant[{n}]", json.dumps(granted, indent=1))
            table.add_row(
                "quotas in force",
                json.dumps(info["quotas_in_force"], indent=1)
                + "\n(declared over the host defaults; a grant can only lower them)",
            )
            table.add_row(
                "kernel (Landlock) roots",
                f"read: {info['kernel_read_roots']}\nwrite: {info['kernel_write_roots']}",
            )
            console.print(table)


# -- jobs ---------------------------------------------------------------------------------
@main.group()
def jobs() -> None:
    """Jobs of the installed plugins."""


def _schedule_for(host: Host, plugin_id: str, spec: JobSpec) -> tuple[str | None, str]:
    override = host.config.job_override(plugin_id, spec.id)
    schedule = override.schedule if override and override.schedule else spec.schedule
    timezone = override.timezone if override and override.timezone else spec.timezone
    return schedule, timezone


def _next_fires(host: Host, plugin_id: str, spec: JobSpec, n: int) -> list[datetime] | str:
    schedule, timezone = _schedule_for(host, plugin_id, spec)
    if schedule is None:
        return []
    try:
        parsed = parse_schedule(schedule, timezone, dict(os.environ))
    except ScheduleError as err:
        return str(err)
    fires = []
    after = datetime.now(UTC)
    for fire in parsed.iter_after(after):
        fires.append(fire)
        if len(fires) >= n:
            break
    return fires


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_list(ctx: click.Context, as_json: bool) -> None:
    """List every job with its schedule, next fire and state."""
    with _host(ctx) as host:
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
            _json({"jobs": rows})
            return
        table = Table(
            "job", "schedule", "timezone", "next fire", "state", "description", title="jobs"
        )
        for row in rows:
            state = "paused" if row["paused"] else ("enabled" if row["enabled"] else "disabled")
            table.add_row(
                row["job"],
                row["schedule"] or "manual",
                row["timezone"],
                row["next"] or "-",
                state,
                row["description"],
            )
        console.print(table)
        _report_problems(host)


@jobs.command("next")
@click.argument("job")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_next(ctx: click.Context, job: str, count: int, as_json: bool) -> None:
    """Show the next N fire times of PLUGIN:JOB."""
    with _host(ctx) as host:
        plugin, spec = host.job(job)
        fires = _next_fires(host, plugin.manifest.id, spec, count)
        if isinstance(fires, str):
            _fail(f"{job}: {fires}")
        schedule, timezone = _schedule_for(host, plugin.manifest.id, spec)
        if as_json:
            _json(
                {
                    "job": job,
                    "schedule": schedule,
                    "timezone": timezone,
                    "next": [f.isoformat() for f in fires],
                }
            )
            return
        if not fires:
            console.print(f"{job} has no schedule: it runs only when triggered")
            return
        console.print(f"{job}  [dim]{schedule} ({timezone})[/dim]")
        for fire in fires:
            console.print(f"  {fire.isoformat()}  [dim]{fire.astimezone(UTC).isoformat()}[/dim]")


@jobs.command("run")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_run(ctx: click.Context, job: str, as_json: bool) -> None:
    """Run PLUGIN:JOB now, in the sandbox, in the workspace; record it and print the run."""
    with _host(ctx) as host:
        plugin, spec = host.job(job)
        previous = host.store.stats(job).get(job)
        run_count = (previous.total if previous else 0) + 1
        plan = RunPlan(plugin=plugin, job_id=spec.id, trigger="manual", run_count=run_count)

        def run() -> RunRecord:
            return host.execute(plan)

        if as_json:
            record = run()
            _json(record.model_dump(mode="json"))
        else:
            with errors.status(f"running {job} in the sandbox…"):
                record = run()
            _print_record(record)
        if record.status != "success":
            sys.exit(1)


@jobs.command("pause")
@click.argument("job")
@click.pass_context
def jobs_pause(ctx: click.Context, job: str) -> None:
    """Stop PLUGIN:JOB from firing until resumed (survives restarts)."""
    with _host(ctx) as host:
        host.job(job)
        host.store.set_paused(job, True)
        note = " (the running plugbox serve was told)" if _nudge_serve(host) else ""
        console.print(f"{job} paused{note}")


@jobs.command("resume")
@click.argument("job")
@click.pass_context
def jobs_resume(ctx: click.Context, job: str) -> None:
    """Let a paused PLUGIN:JOB fire again."""
    with _host(ctx) as host:
        host.job(job)
        host.store.set_paused(job, False)
        note = " (the running plugbox serve was told)" if _nudge_serve(host) else ""
        console.print(f"{job} resumed{note}")


def _signal_serve(state_dir: Path) -> int | None:
    """SIGHUP the ``plugbox serve`` that owns ``state_dir`` (it re-reads plugins and pause
    state); its pid, or None when none runs."""
    from plugbox.host.daemon import PID_FILE

    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return None
    return pid


def _nudge_serve(host: Host) -> bool:
    """Make a running ``plugbox serve`` re-read pause state now; False if none runs."""
    return _signal_serve(host.config.state_dir) is not None


# -- runs ---------------------------------------------------------------------------------
@main.group()
def runs() -> None:
    """Run history."""


@runs.command("list")
@click.option("--job", help="only runs of PLUGIN:JOB")
@click.option("--status", help="only runs with this status")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs_list(
    ctx: click.Context, job: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List recent runs, newest first."""
    with _host(ctx) as host:
        records = host.store.list(job=job, status=status, limit=limit)  # type: ignore[arg-type]
        if as_json:
            _json(
                {
                    "runs": [
                        r.model_dump(mode="json", exclude={"log", "output", "events"})
                        for r in records
                    ]
                }
            )
            return
        # The id is what `runs show` takes: never cut it short, fold it if the terminal is narrow.
        run_column = Column("run", overflow="fold", min_width=32)
        table = Table(
            run_column, "job", "status", "trigger", "attempt", "started", "ms", title="runs"
        )
        for r in records:
            style = _STATUS_STYLE.get(r.status, "white")
            started = r.started_at.isoformat(timespec="seconds") if r.started_at else "-"
            table.add_row(
                r.run_id,
                r.job,
                f"[{style}]{r.status}[/]",
                r.trigger,
                str(r.attempt),
                started,
                str(r.duration_ms or "-"),
            )
        console.print(table)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run in full: result, error, log, events, resources, enforcement."""
    with _host(ctx) as host:
        record = host.store.get(host.store.resolve_id(run_id))
        if as_json:
            _json(record.model_dump(mode="json"))
            return
        _print_record(record)


def _print_record(record: RunRecord) -> None:
    style = _STATUS_STYLE.get(record.status, "white")
    console.print(
        f"[bold]{record.job}[/bold] run {record.run_id}: [{style}]{record.status}[/]"
        + (f" ({record.kill_reason})" if record.kill_reason else "")
    )
    console.print(
        f"  trigger {record.trigger}, attempt {record.attempt}, {record.duration_ms} ms, "
        f"cpu {record.cpu_ms} ms, peak {record.peak_memory_mb} MB"
    )
    if record.result is not None:
        console.print(f"  result: {json.dumps(record.result)}")
    if record.error is not None:
        console.print(f"  [red]{record.error.type}: {record.error.message}[/red]")
        if record.error.traceback:
            console.print(record.error.traceback, markup=False, highlight=False)
    for entry in record.log:
        console.print(
            f"  log {entry.level}: {entry.message} {json.dumps(entry.fields) if entry.fields else ''}",
            markup=False,
        )
    for event in record.events:
        console.print(f"  event {event.name}: {json.dumps(event.data)}", markup=False)
    for denial in record.denials:
        reason = f" ({denial.reason})" if denial.reason else ""
        console.print(
            f"  denied {denial.operation} {denial.target!r} by {denial.rule}{reason}",
            markup=False,
            style="yellow",
        )
    if record.output:
        console.print("  output:", record.output[-2000:], markup=False, highlight=False)
    if record.enforcement:
        levels = ", ".join(
            f"{k}={record.enforcement[k]}"
            for k in ("fs", "net", "env", "shell", "cpu", "memory", "processes")
            if k in record.enforcement
        )
        console.print(f"  [dim]enforcement ({record.enforcement.get('mode')}): {levels}[/dim]")
