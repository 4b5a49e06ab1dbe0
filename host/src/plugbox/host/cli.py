"""The ``plugbox`` command line. Every listing (and ``jobs run``) takes ``--json``.

Exit status: 0 when the command did what was asked; 1 when a run did not succeed; 2 for bad
input (an unknown job, a bad config file), with a message that says what to do.

One module per view: ``cli_plugins``, ``cli_jobs``, ``cli_runs``, ``cli_webhooks``; what they
share is in ``cli_common``, and every string a job or a plugin wrote is printed through
``cli_text``, so that it reaches the terminal as text and never as markup or a control sequence.

Start-up is paid by every command, so this module imports click and nothing heavy: the views
load when their command runs (:class:`~plugbox.host.cli_lazy.LazyGroup`), and the commands
below import what they need inside their bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from plugbox.host.cli_lazy import LazyGroup

_LEVEL_STYLE = {"kernel": "green", "best-effort": "yellow", "advisory": "red"}

#: Views loaded when one of their commands runs; the help line is checked against each
#: group's docstring by tests/host/test_cli_lazy.py.
_VIEWS = {
    "plugins": ("plugbox.host.cli_plugins:plugins", "Installed plugins and their permissions."),
    "jobs": ("plugbox.host.cli_jobs:jobs", "Jobs of the installed plugins."),
    "runs": ("plugbox.host.cli_runs:runs", "Run history."),
    "tokens": (
        "plugbox.host.cli_tokens:tokens",
        "Bearer tokens for the HTTP API (scopes: read < trigger < admin).",
    ),
    "webhooks": (
        "plugbox.host.cli_webhooks:webhooks",
        "Webhook deliveries ([[webhooks]] in plugbox.toml).",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=_VIEWS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="plugbox.toml to use (default: $PLUGBOX_CONFIG or ./plugbox.toml)",
)
@click.option(
    "--db",
    metavar="URL",
    help="run store to use, sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
    " (default: $PLUGBOX_DATABASE_URL, else database_url in plugbox.toml, else"
    " plugbox.db in the state directory)",
)
@click.pass_context
def main(ctx: click.Context, config: str | None, db: str | None) -> None:
    """plugbox: scheduled plugin jobs in a permission sandbox."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    ctx.obj["db"] = db


# -- doctor ---------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def doctor(as_json: bool) -> None:
    """Show which enforcement layers work on this machine, and what each capability gets."""
    from rich.table import Table
    from rich.text import Text

    from plugbox.host.cli_common import console
    from plugbox.host.cli_text import text
    from plugbox.sandbox.doctor import diagnose

    report = diagnose()
    if as_json:
        click.echo(report.to_json())
        return
    # Details quote the kernel and the machine (errno texts, paths): text, never markup.
    console.print(Text.assemble(("plugbox doctor", "bold"), " — ", text(report.system)))
    layers = Table("layer", "active", "detail", title="enforcement layers")
    for layer in report.layers:
        active = Text("yes", "green") if layer.active else Text("no", "red")
        layers.add_row(text(layer.name), active, text(layer.detail))
    console.print(layers)
    levels = Table("capability", "protected by", title="per capability")
    for name, level in report.capabilities.items():
        levels.add_row(text(name), text(level, _LEVEL_STYLE.get(level, "white")))
    console.print(levels)
    console.print(
        "kernel = the OS refuses · best-effort = watched and killed · advisory = proxies only"
    )
    if any(not layer.active for layer in report.layers):
        console.print(
            "Runs still work without the missing layers; every run record says what protected it."
        )
    for hint in report.hints:
        console.print(text(f"hint (speed, not safety): {hint}", "dim"))


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
    from plugbox.host.cli_common import fail
    from plugbox.host.scaffold import ScaffoldError, create_project

    try:
        project = create_project(name, directory)
    except ScaffoldError as err:
        fail(str(err))
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
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="where the HTTP API answers (default: [http] listen in plugbox.toml, else 127.0.0.1:8377)",
)
@click.option("--no-http", is_flag=True, help="run the scheduler without the HTTP API")
@click.pass_context
def serve(ctx: click.Context, listen: str | None, no_http: bool) -> None:
    """Run the scheduler and the HTTP API in the foreground until Ctrl-C.

    Ctrl-C or SIGTERM stops firing, waits `shutdown_grace` for runs in flight, then cancels them.
    SIGHUP re-scans the installed plugins. Decisions are logged as JSON lines on stderr.
    """
    from plugbox.host.api.server import ListenError
    from plugbox.host.api.serving import serve as serve_with_api
    from plugbox.host.cli_common import fail, open_host
    from plugbox.host.config.models import parse_listen
    from plugbox.host.events import emit

    with open_host(ctx) as host:
        address = None if no_http else (listen or host.config.http.listen)
        try:
            if address is not None:
                parse_listen(address)
            host.check_plugin_settings()  # ConfigError: operator values the plugins refuse
            for job, missing in host.unconfigured_jobs().items():
                emit("job_not_configured", job=job, reason=missing)
            sys.exit(serve_with_api(host, address))
        except (ValueError, ListenError) as err:
            fail(str(err))
