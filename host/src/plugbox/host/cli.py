"""The ``plugbox`` command line. Every listing takes ``--json``; exit status 0 means success.

Only ``plugbox doctor`` exists so far; the host issue adds plugins, jobs, runs, serve and new.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from plugbox.sandbox.doctor import diagnose

_LEVEL_STYLE = {"kernel": "green", "best-effort": "yellow", "advisory": "red"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """plugbox: scheduled plugin jobs in a permission sandbox."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def doctor(as_json: bool) -> None:
    """Show which enforcement layers work on this machine, and what each capability gets."""
    report = diagnose()
    if as_json:
        click.echo(report.to_json())
        return
    console = Console()
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
