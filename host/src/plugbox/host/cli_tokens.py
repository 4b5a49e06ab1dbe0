"""``plugbox tokens create|list|revoke``: the bearer tokens the HTTP API accepts.

Needs no plugins and no run store: only the state directory, where
:mod:`plugbox.host.tokens` keeps each token's hash. That module is imported by the commands, not
here, so ``plugbox --help`` does not build its models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from plugbox.host.cli_common import config_of, console, fail, print_json
from plugbox.host.cli_text import text
from plugbox.host.config import ensure_state_dir

if TYPE_CHECKING:
    from plugbox.host.tokens import TokenStore


@click.group()
def tokens() -> None:
    """Bearer tokens for the HTTP API (scopes: read < trigger < admin)."""


def _store(ctx: click.Context) -> TokenStore:
    from plugbox.host.tokens import TokenStore

    config = config_of(ctx)
    return TokenStore(ensure_state_dir(config))


@tokens.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    default="read",
    show_default=True,
    help="comma-separated, from read, trigger, admin; each includes the ones before it",
)
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scopes: str) -> None:
    """Make a token called NAME and print it once (only its hash is kept)."""
    from plugbox.host.tokens import TokenError, parse_scopes

    store = _store(ctx)
    try:
        info, secret = store.create(name, parse_scopes(scopes))
    except TokenError as err:
        fail(str(err))
    click.echo(secret)
    click.echo(
        f"token {info.name!r} ({', '.join(info.scopes)}) created; it is shown only now."
        f" Send it as 'Authorization: Bearer <token>'. Stored as a hash in {store.path}.",
        err=True,
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens: name, scopes, created, last used (never the secret)."""
    found = _store(ctx).list()
    if as_json:
        print_json({"tokens": [t.model_dump(mode="json") for t in found]})
        return
    if not found:
        click.echo("no tokens; create one with: plugbox tokens create NAME --scopes read")
        return
    table = Table("name", "scopes", "created", "last used", title="tokens")
    for token in found:
        last = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        table.add_row(
            text(token.name),
            ", ".join(token.scopes),
            token.created_at.isoformat(timespec="seconds"),
            last,
        )
    console.print(table)


@tokens.command("revoke")
@click.argument("name")
@click.pass_context
def tokens_revoke(ctx: click.Context, name: str) -> None:
    """Delete the token NAME; a running serve refuses it from its next request on."""
    from plugbox.host.tokens import TokenError

    try:
        _store(ctx).revoke(name)
    except TokenError as err:
        fail(str(err))
    click.echo(f"token {name!r} revoked")
