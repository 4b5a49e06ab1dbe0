"""The webhook delivery log: one row per (run, event, receiver) and one per attempt.

The table is the delivery queue itself, not a copy of one: a delivery is written before anything
is sent, so a host that stops (or a ``plugbox jobs run`` that exits) leaves it ``pending`` and the
next ``plugbox serve`` carries it on (docs/adr/0015-webhook-delivery.md). A sender *claims* due
rows with a lease (``leased_until_us``) in one write transaction, so two processes sharing the
store never send the same delivery at once; a sender that dies mid-attempt loses its lease and
the row becomes due again.

States: ``pending`` (waiting for its next attempt) → ``delivered`` (a 2xx answer) | ``failed``
(the retry window closed) | ``abandoned`` (its ``[[webhooks]]`` table was removed) — or
``dropped`` when it was never queued because the queue was full.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from plugbox.host.store import dialect
from plugbox.host.store.sql import from_us, metadata, to_us

DeliveryState = Literal["pending", "delivered", "failed", "abandoned", "dropped"]
FINISHED_STATES = ("delivered", "failed", "abandoned", "dropped")

deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("job", String(255), nullable=False),
    Column("event", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("next_attempt_us", BigInteger),
    Column("give_up_at_us", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("leased_until_us", BigInteger),
    Column("reason", Text),
)
attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("duration_ms", BigInteger, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("next_retry_us", BigInteger),
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookAttempt(_Frozen):
    """One request to a receiver and what came of it."""

    attempt: int
    at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    next_retry_at: datetime | None = None


class WebhookDelivery(_Frozen):
    """One event of one run for one receiver, with every attempt made so far."""

    delivery_id: str
    run_id: str
    job: str
    event: str
    url: str
    state: DeliveryState
    created_at: datetime
    next_attempt_at: datetime | None = None
    give_up_at: datetime
    reason: str | None = None
    attempts: tuple[WebhookAttempt, ...] = ()


class NewDelivery(_Frozen):
    """What the notifier queues; ``body`` is the exact bytes every attempt sends (as text)."""

    delivery_id: str
    run_id: str
    job: str
    event: str
    url: str
    body: str
    give_up_at: datetime


class Claimed(_Frozen):
    """A due delivery this process holds the lease on."""

    delivery_id: str
    url: str
    body: str
    attempts: int
    give_up_at: datetime


class DeliveryLog:
    """The delivery rows of one run store (its engine); safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # The run store's write option: SQLite takes the write lock up front (see dialect.py).
        self._writer = dialect.writer(engine)

    def add(self, new: Iterable[NewDelivery], now: datetime, max_pending: int) -> list[str]:
        """Queue deliveries due ``now``; those beyond ``max_pending`` are stored ``dropped``.

        Returns the ids that were dropped (the caller says so in its log).
        """
        dropped = []
        with self._writer.begin() as conn:
            pending = conn.execute(
                select(func.count()).select_from(deliveries).where(deliveries.c.state == "pending")
            ).scalar_one()
            for item in new:
                full = pending >= max_pending
                pending += 0 if full else 1
                reason = (
                    f"not queued: {max_pending} deliveries were already waiting (the receivers"
                    " are down or slow); this one was never sent"
                    if full
                    else None
                )
                conn.execute(
                    insert(deliveries).values(
                        **item.model_dump(exclude={"give_up_at"}),
                        state="dropped" if full else "pending",
                        created_at_us=to_us(now),
                        next_attempt_us=None if full else to_us(now),
                        give_up_at_us=to_us(item.give_up_at),
                        attempts=0,
                        reason=reason,
                    )
                )
                if full:
                    dropped.append(item.delivery_id)
        return dropped

    def count(self, state: DeliveryState) -> int:
        """How many deliveries are in ``state``."""
        query = select(func.count()).select_from(deliveries).where(deliveries.c.state == state)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def claim(
        self, now: datetime, lease_until: datetime, only: set[str] | None = None, limit: int = 10
    ) -> builtins.list[Claimed]:
        """Take the lease on up to ``limit`` due pending deliveries (of ``only``, if given)."""
        now_us = to_us(now)
        due = [
            deliveries.c.state == "pending",
            deliveries.c.next_attempt_us <= now_us,
            or_(deliveries.c.leased_until_us.is_(None), deliveries.c.leased_until_us < now_us),
        ]
        if only is not None:
            due.append(deliveries.c.delivery_id.in_(sorted(only)))
        # PostgreSQL: rows another sender is claiming right now are skipped, not sent twice
        # (SQLite has no row locks; its write transaction, taken up front, serialises claims).
        query = (
            select(deliveries)
            .where(*due)
            .order_by(deliveries.c.next_attempt_us)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._writer.begin() as conn:
            rows = list(conn.execute(query).mappings())
            ids = [row["delivery_id"] for row in rows]
            if ids:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.delivery_id.in_(ids))
                    .values(leased_until_us=to_us(lease_until))
                )
        return [
            Claimed(
                delivery_id=row["delivery_id"],
                url=row["url"],
                body=row["body"],
                attempts=row["attempts"],
                give_up_at=from_us(row["give_up_at_us"]),
            )
            for row in rows
        ]

    def next_due(self, only: set[str] | None = None) -> datetime | None:
        """When the earliest pending delivery (of ``only``) is due, or ``None``."""
        query = select(func.min(deliveries.c.next_attempt_us)).where(
            deliveries.c.state == "pending"
        )
        if only is not None:
            query = query.where(deliveries.c.delivery_id.in_(sorted(only)))
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar_one()
        return None if value is None else from_us(value)

    def record(
        self,
        delivery_id: str,
        attempt: WebhookAttempt,
        state: DeliveryState,
        reason: str | None = None,
    ) -> None:
        """Store one attempt and what it leaves the delivery as, and release the lease."""
        next_us = None if attempt.next_retry_at is None else to_us(attempt.next_retry_at)
        with self._writer.begin() as conn:
            conn.execute(
                insert(attempts).values(
                    delivery_id=delivery_id,
                    attempt=attempt.attempt,
                    at_us=to_us(attempt.at),
                    duration_ms=attempt.duration_ms,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    next_retry_us=next_us,
                )
            )
            conn.execute(
                update(deliveries)
                .where(deliveries.c.delivery_id == delivery_id)
                .values(
                    state=state,
                    attempts=attempt.attempt,
                    next_attempt_us=next_us,
                    leased_until_us=None,
                    reason=reason,
                )
            )

    def finish(self, delivery_id: str, state: DeliveryState, reason: str) -> None:
        """End a delivery without an attempt (``abandoned``, or ``failed`` past its window)."""
        with self._writer.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.delivery_id == delivery_id)
                .values(state=state, next_attempt_us=None, leased_until_us=None, reason=reason)
            )

    def list(
        self, run_id: str | None = None, limit: int = 50, state: str | None = None
    ) -> builtins.list[WebhookDelivery]:
        """Deliveries newest first, each with its attempts in order."""
        query = (
            select(deliveries)
            .order_by(deliveries.c.created_at_us.desc(), deliveries.c.delivery_id)
            .limit(limit)
        )
        if run_id is not None:
            query = query.where(deliveries.c.run_id == run_id)
        if state is not None:
            query = query.where(deliveries.c.state == state)
        with self._engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
            ids = [row["delivery_id"] for row in rows]
            made: dict[str, builtins.list[WebhookAttempt]] = {}
            if ids:
                found = conn.execute(
                    select(attempts)
                    .where(attempts.c.delivery_id.in_(ids))
                    .order_by(attempts.c.delivery_id, attempts.c.attempt)
                ).mappings()
                for row in found:
                    made.setdefault(row["delivery_id"], []).append(_attempt(row))
        return [
            WebhookDelivery(
                delivery_id=row["delivery_id"],
                run_id=row["run_id"],
                job=row["job"],
                event=row["event"],
                url=row["url"],
                state=row["state"],
                created_at=from_us(row["created_at_us"]),
                next_attempt_at=_maybe(row["next_attempt_us"]),
                give_up_at=from_us(row["give_up_at_us"]),
                reason=row["reason"],
                attempts=tuple(made.get(row["delivery_id"], ())),
            )
            for row in rows
        ]

    def prune(self, before: datetime) -> int:
        """Delete finished deliveries created before ``before``, with their attempts."""
        old = select(deliveries.c.delivery_id).where(
            deliveries.c.state.in_(FINISHED_STATES), deliveries.c.created_at_us < to_us(before)
        )
        with self._writer.begin() as conn:
            conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(old)))
            return conn.execute(
                delete(deliveries).where(deliveries.c.delivery_id.in_(old))
            ).rowcount


def _maybe(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _attempt(row: RowMapping) -> WebhookAttempt:
    return WebhookAttempt(
        attempt=row["attempt"],
        at=from_us(row["at_us"]),
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        error=row["error"],
        next_retry_at=_maybe(row["next_retry_us"]),
    )
