"""``plugbox webhooks log``: every webhook delivery and each of its attempts.

A delivery is one event of one run for one ``[[webhooks]]`` receiver; its attempts say what the
receiver answered (status code or error), how long it took, and when the next retry is due.
``plugbox runs show`` prints the same for one run (:func:`print_deliveries`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Column, Table

from plugbox.host.cli_common import console, open_host, print_json
from plugbox.host.cli_text import text

if TYPE_CHECKING:  # the store (and SQLAlchemy) loads only when a command opens it
    from plugbox.host.store import WebhookDelivery

STATE_STYLE = {
    "delivered": "green",
    "pending": "yellow",
    "failed": "red",
    "abandoned": "red",
    "dropped": "red",
}


@click.group()
def webhooks() -> None:
    """Webhook deliveries ([[webhooks]] in plugbox.toml)."""


@webhooks.command("log")
@click.option("--run", "run_id", help="only deliveries of this run (a unique beginning is enough)")
@click.option(
    "--state",
    type=click.Choice(["pending", "delivered", "failed", "abandoned", "dropped"]),
    help="only deliveries in this state",
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="show at most this many",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def webhooks_log(
    ctx: click.Context, run_id: str | None, state: str | None, limit: int, as_json: bool
) -> None:
    """List webhook deliveries, newest first, with every attempt."""
    with open_host(ctx) as host:
        if run_id is not None:
            run_id = host.store.resolve_id(run_id)
        found = host.deliveries.list(run_id=run_id, limit=limit, state=state)
        if as_json:
            print_json({"deliveries": [d.model_dump(mode="json") for d in found]})
            return
        if not found:
            console.print("no webhook deliveries" + (f" for run {run_id}" if run_id else ""))
            return
        print_deliveries(found)


def print_deliveries(found: list[WebhookDelivery]) -> None:
    """A table of deliveries, one line per attempt under each."""
    table = Table(
        Column("delivery / attempt", overflow="fold"),
        "event",
        Column("url", overflow="fold"),
        "state / answer",
        "ms",
        "when / next retry",
        title="webhook deliveries",
    )
    for delivery in found:
        table.add_row(
            text(f"{delivery.delivery_id} (run {delivery.run_id[:12]})"),
            text(delivery.event),
            text(delivery.url),
            text(delivery.state, STATE_STYLE.get(delivery.state, "white")),
            "",
            text(delivery.created_at.isoformat(timespec="seconds")),
        )
        for attempt in delivery.attempts:
            answer = str(attempt.status_code) if attempt.status_code is not None else "no answer"
            if attempt.error:
                answer = f"{answer}: {attempt.error}"
            retry = (
                attempt.next_retry_at.isoformat(timespec="seconds") if attempt.next_retry_at else ""
            )
            table.add_row(
                text(f"  attempt {attempt.attempt}"),
                "",
                "",
                text(answer),
                str(attempt.duration_ms),
                text(attempt.at.isoformat(timespec="seconds") + (f" / {retry}" if retry else "")),
            )
        if delivery.reason:
            table.add_row("", "", "", text(delivery.reason, "dim"), "", "")
    console.print(table)
