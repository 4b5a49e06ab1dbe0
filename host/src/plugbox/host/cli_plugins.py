"""``plugbox plugins list|inspect|reload``: installed plugins and what each job may do.

Names, descriptions, versions and distribution names come from plugin metadata and manifests,
and glob classes such as ``[abc]`` look like rich markup: all of it is printed as inert text
(:mod:`plugbox.host.cli_text`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from plugbox.host.cli_common import (
    console,
    open_host,
    print_json,
    report_problems,
    signal_serve,
)
from plugbox.host.cli_text import dumps, inert, text

if TYPE_CHECKING:
    from plugbox.sdk.permissions import Permissions


@click.group()
def plugins() -> None:
    """Installed plugins and their permissions."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins; broken ones are reported with the reason and skipped."""
    with open_host(ctx) as host:
        loaded = host.discovery.plugins
        if as_json:
            print_json(
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
                text(p.manifest.id),
                text(p.manifest.version),
                text(p.entry_point.dist),
                str(len(p.manifest.jobs)),
                "yes" if enabled else Text("disabled", "yellow"),
            )
        console.print(table)
        report_problems(host)


def _permissions_json(permissions: Permissions) -> dict[str, Any]:
    return permissions.model_dump(mode="json", exclude_defaults=True)


@plugins.command("reload")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_reload(ctx: click.Context, as_json: bool) -> None:
    """Import every plugin again, forgetting what was remembered, and tell `plugbox serve`.

    Plugins are imported once per installed version; use this after fixing what a broken
    plugin needed without upgrading it. A running serve re-reads them (runs in flight go on).
    """
    with open_host(ctx) as host:
        report = host.rediscover()
        pid = signal_serve(host.config.state_dir)
        if as_json:
            print_json(
                {
                    "plugins": [p.manifest.id for p in report.plugins],
                    "problems": len(report.problems),
                    "serve_pid": pid,
                }
            )
            return
        loaded = ", ".join(p.manifest.id for p in report.plugins) or "none"
        click.echo(f"imported the installed plugins again: loaded {inert(loaded)}")
        report_problems(host)
        if pid is not None:
            click.echo(f"asked plugbox serve (pid {pid}) to reload its plugins")


@plugins.command("inspect")
@click.argument("plugin_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_inspect(ctx: click.Context, plugin_id: str, as_json: bool) -> None:
    """Show a plugin's declared permissions, the operator's grants, and what each job gets."""
    from plugbox.host.catalog import job_permissions, job_scheduling
    from plugbox.host.settings_view import settings_lines, settings_view

    with open_host(ctx) as host:
        plugin = host.plugin(plugin_id)

        manifest = plugin.manifest
        grants = host.config.grants_for(manifest.id)
        jobs: dict[str, dict[str, Any]] = {
            spec.id: job_permissions(host, plugin, spec).model_dump(mode="json")
            for spec in manifest.jobs
        }
        for spec in manifest.jobs:
            jobs[spec.id]["scheduling"] = job_scheduling(host, plugin, spec).model_dump(mode="json")
        data = {
            "plugin": manifest.id,
            "version": manifest.version,
            "distribution": plugin.entry_point.dist,
            "plugin_permissions": _permissions_json(manifest.permissions),
            "jobs": jobs,
        }
        # Operator settings (config, bindings, secrets) per job: settings_view.py.
        settings = {
            spec.id: settings_view(host.config, manifest, spec.id) for spec in manifest.jobs
        }
        data["settings"] = settings
        if as_json:
            print_json(data)
            return
        console.print(
            Text.assemble(
                text(manifest.id, "bold"),
                " ",
                text(f"{manifest.version} ({plugin.entry_point.dist}) — {manifest.name}"),
            )
        )
        if grants:
            console.print(
                f"operator grants narrow this plugin: effective = declared ∩ {len(grants)} grant(s)"
            )
        for job_id, info in jobs.items():
            console.print(_scheduling_table(f"{manifest.id}:{job_id}", info["scheduling"]))
            table = Table("field", "declared", title=text(f"{manifest.id}:{job_id}"))
            table.show_lines = True
            for key, value in info["declared"].items():
                table.add_row(text(key), text(dumps(value, indent=1)))
            for n, granted in enumerate(info["granted"]):
                table.add_row(text(f"operator grant[{n}]"), text(dumps(granted, indent=1)))
            table.add_row(
                "quotas in force",
                text(dumps(info["quotas_in_force"], indent=1))
                + "\n(declared over the host defaults; a grant can only lower them)",
            )
            granted = info["kernel"]
            table.add_row(
                "what the kernel grants (Landlock)",
                text(
                    f"read: {', '.join(granted['read']) or '-'}\n"
                    f"write: {', '.join(granted['write']) or '-'}\n"
                    f"execute: {_executable(granted['execute'])}"
                ),
            )
            console.print(table)
            rows = settings_lines(settings[job_id])
            if rows:
                extra = Table("field", "value", title=text(f"{manifest.id}:{job_id} settings"))
                for field, value in rows:
                    extra.add_row(text(field), text(value))
                console.print(extra)


def _executable(execute: list[str] | str) -> str:
    """What execve may start, for a person: the files, none, or every system program."""
    if isinstance(execute, str):
        return f"{execute} (a learn run)"
    return ", ".join(execute) or "nothing (no shell capability)"


def _scheduling_table(job: str, info: dict[str, Any]) -> Table:
    """When and how the job runs, one row per setting, in a reviewer's words."""
    table = Table("scheduling", "in force", title=text(f"{job}: when and how it runs"))
    changed = set(info["overridden"])

    def row(name: str, value: str, *keys: str) -> None:
        note = " (set in plugbox.toml)" if changed.intersection(keys) else ""
        table.add_row(name, text(value + note))

    schedule = info["schedule"]
    if schedule is None:
        row("schedule", "none: runs only when triggered", "schedule")
    else:
        words = info["schedule_error"] or info["schedule_words"] or ""
        row("schedule", f"{schedule}" + (f" — {words}" if words else ""), "schedule")
    row("time zone", info["timezone"], "timezone")
    row("enabled", "yes" if info["enabled"] else "no: never fires on schedule", "enabled")
    row("run on startup", "yes" if info["run_on_startup"] else "no")
    row("timeout", _ms(info["timeout_ms"]), "quotas")
    retries = info["retries"]
    if retries:
        waits = ", ".join(_ms(ms) for ms in info["retry_delays_ms"])
        row("retries", f"{retries}, after waiting {waits} (exponential backoff, ±10%)")
    else:
        row("retries", "0: a failed run is not retried")
    row("concurrency", info["concurrency"])
    misfire = info["misfire"]
    if misfire == "catch_up":
        misfire += f" (at most {info['catch_up_limit']} missed fires)"
    row("misfire", misfire)
    row("jitter", _ms(info["jitter_ms"]) if info["jitter_ms"] else "none")
    row("priority", f"{info['priority']} (0-10; higher runs first when workers are busy)")
    return table


def _ms(value: int) -> str:
    """``1500`` -> ``1.5 s``; ``300000`` -> ``5 min``: durations as a person reads them."""
    if value % 60_000 == 0 and value >= 60_000:
        return f"{value // 60_000} min"
    return f"{value / 1000:g} s"
