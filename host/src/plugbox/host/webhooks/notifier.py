"""Queueing webhook deliveries in the run store and sending them from one thread of their own.

:meth:`Notifier.notify` runs on the thread that finished a run (a scheduler worker, or the CLI):
it decides the events, writes one ``pending`` delivery per matching receiver and wakes the sender
— nothing there waits on the network, so a receiver that never answers cannot delay a fire. The
sender thread claims due deliveries, POSTs them with httpx, and records every attempt; a failure
is retried with exponential backoff and jitter until the receiver's ``retry_for`` window closes.

Two modes: ``plugbox serve`` *resumes* — it sends every due delivery in the store, its own and
those another process left (a ``jobs run`` whose receiver failed, a host that stopped mid-retry).
``plugbox jobs run`` sends only its own, makes each one's first attempt before it exits, and
leaves retries to ``plugbox serve``. See docs/adr/0015-webhook-delivery.md.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from plugbox.host.config import WebhookConfig
from plugbox.host.store import RunRecord, RunStore
from plugbox.host.store.records import SUMMARY_EXCLUDED
from plugbox.host.store.webhooks import (
    Claimed,
    DeliveryLog,
    DeliveryState,
    NewDelivery,
    WebhookAttempt,
)
from plugbox.host.webhooks.events import CONCLUDED, LOOK_BACK, events_for, wants_job
from plugbox.host.webhooks.signing import signature

log = logging.getLogger("plugbox.host.webhooks")

#: Deliveries waiting at once, across receivers; beyond it new ones are stored ``dropped``.
MAX_PENDING = 10_000
#: The first retry waits about this long; each later one twice as long, up to ``MAX_BACKOFF_S``.
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 600.0
#: Each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER], so receivers coming back
#: from an outage are not hit by every host's retries in the same second.
JITTER = 0.25
#: How often a resuming sender looks for deliveries other processes queued.
POLL_S = 2.0
#: Deliveries claimed per look; each is sent before the next is claimed.
CLAIM_BATCH = 10
USER_AGENT = "plugbox-webhooks/0.1"
#: A resuming sender removes finished deliveries older than the retention this often.
PRUNE_EVERY_S = 3600.0
#: How long a resuming sender's stop waits for the attempt in flight.
SHUTDOWN_JOIN_S = 2.0

Emit = Callable[..., None]


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    base: float = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** (attempt - 1))
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


def _no_emit(event: str, **fields: Any) -> None:
    log.info("%s %s", event, fields)


class Notifier:
    """Turns finished runs into signed webhook deliveries; one per process that runs jobs."""

    def __init__(
        self,
        webhooks: tuple[WebhookConfig, ...],
        keys: Mapping[str, bytes],
        store: RunStore,
        deliveries: DeliveryLog,
        *,
        resume: bool,
        emit: Emit | None = None,
        rng: random.Random | None = None,
        keep_days: int = 0,
    ) -> None:
        self._hooks = {hook.url: hook for hook in webhooks}
        self._keys = dict(keys)
        self._store = store
        self._log = deliveries
        self._resume = resume
        self._emit = emit or _no_emit
        self._rng = rng or random.Random()
        self._keep = timedelta(days=keep_days) if keep_days else None
        self._next_prune = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._own: set[str] = set()  # ids this process queued (all a non-resuming sender sends)
        self._unsent: set[str] = set()  # own ids whose first attempt is still to come
        self._client = httpx.Client(follow_redirects=False, headers={"user-agent": USER_AGENT})
        self._thread = threading.Thread(target=self._run, name="plugbox-webhooks", daemon=True)
        self._thread.start()

    # -- the run-finishing side: never waits on the network -----------------------------------
    def notify(self, record: RunRecord) -> list[str]:
        """Queue the deliveries ``record`` raises; return their ids (empty when none)."""
        hooks = [hook for hook in self._hooks.values() if wants_job(hook, record.job)]
        if not hooks:
            return []
        # The previous run is looked up (one indexed query) only when someone wants recoveries.
        wants_recovery = any("run.recovered" in hook.events for hook in hooks)
        events = events_for(record, self._previous if wants_recovery else _no_previous)
        now = datetime.now(UTC)
        new = []
        for event in events:
            body = _body(event, record, now)
            for hook in hooks:
                if event in hook.events:
                    new.append(
                        NewDelivery(
                            delivery_id=f"msg_{uuid.uuid4().hex}",
                            run_id=record.run_id,
                            job=record.job,
                            event=event,
                            url=hook.url,
                            body=body,
                            give_up_at=now + timedelta(milliseconds=hook.retry_for_ms),
                        )
                    )
        if not new:
            return []
        dropped = set(self._log.add(new, now, MAX_PENDING))
        for item in new:
            if item.delivery_id in dropped:
                self._emit(
                    "webhook_dropped",
                    run=record.run_id,
                    url=item.url,
                    webhook_event=item.event,
                    reason=f"{MAX_PENDING} deliveries already waiting",
                )
        queued = [item.delivery_id for item in new if item.delivery_id not in dropped]
        with self._lock:
            self._own.update(queued)
            self._unsent.update(queued)
        self._wake.set()
        return queued

    def _previous(self, record: RunRecord) -> RunRecord | None:
        earlier = self._store.list(job=record.job, limit=LOOK_BACK, before=record.sort_at)
        return next((run for run in earlier if run.status in CONCLUDED), None)

    # -- the sender thread --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._prune()
                sent = self._send_due()
                wait = 0.0 if sent else self._idle_wait()
            except Exception:  # a store hiccup must not end delivery for the process's lifetime
                log.exception("the webhook sender failed; trying again shortly")
                wait = POLL_S
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def _prune(self) -> None:
        # Finished deliveries follow the run history's retention (days); the resuming sender,
        # the one long-lived process, does it.
        if not self._resume or self._keep is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        removed = self._log.prune(datetime.now(UTC) - self._keep)
        if removed:
            self._emit("webhooks_pruned", deliveries=removed)

    def _scope(self) -> set[str] | None:
        if self._resume:
            return None
        with self._lock:
            return set(self._own)

    def _idle_wait(self) -> float:
        scope = self._scope()
        if scope is not None and not scope:
            return POLL_S
        due = self._log.next_due(scope)
        until = POLL_S if due is None else (due - datetime.now(UTC)).total_seconds()
        # A resuming sender still looks every POLL_S for what other processes queue.
        return max(0.0, min(until, POLL_S))

    def _send_due(self) -> int:
        scope = self._scope()
        if scope is not None and not scope:
            return 0
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self.longest_timeout_s + 30)
        claimed = self._log.claim(now, lease, scope, CLAIM_BATCH)
        for delivery in claimed:
            if self._stop.is_set():
                break
            self._attempt(delivery)
        return len(claimed)

    def _attempt(self, delivery: Claimed) -> None:
        hook = self._hooks.get(delivery.url)
        number = delivery.attempts + 1
        if hook is None:
            self._log.finish(
                delivery.delivery_id,
                "abandoned",
                "no [[webhooks]] table has this url any more; it was not sent again",
            )
            self._done(delivery.delivery_id)
            return
        if datetime.now(UTC) >= delivery.give_up_at and delivery.attempts > 0:
            self._log.finish(delivery.delivery_id, "failed", _gave_up(hook, delivery.attempts))
            self._done(delivery.delivery_id)
            return
        started = datetime.now(UTC)
        clock = time.monotonic()
        status_code, error = self._post(hook, delivery)
        duration_ms = int((time.monotonic() - clock) * 1000)
        state: DeliveryState
        reason = None
        next_retry = None
        if status_code is not None and 200 <= status_code < 300:
            state = "delivered"
        else:
            retry_at = datetime.now(UTC) + timedelta(seconds=backoff_s(number, self._rng))
            if retry_at < delivery.give_up_at:
                state, next_retry = "pending", retry_at
            else:
                state, reason = "failed", _gave_up(hook, number)
        self._log.record(
            delivery.delivery_id,
            WebhookAttempt(
                attempt=number,
                at=started,
                duration_ms=duration_ms,
                status_code=status_code,
                error=error,
                next_retry_at=next_retry,
            ),
            state,
            reason,
        )
        self._emit(
            "webhook_attempt",
            delivery=delivery.delivery_id,
            url=hook.url,
            attempt=number,
            status_code=status_code,
            error=error,
            state=state,
            ms=duration_ms,
        )
        self._done(delivery.delivery_id)

    def _post(self, hook: WebhookConfig, delivery: Claimed) -> tuple[int | None, str | None]:
        body = delivery.body.encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(
                self._keys[hook.url], delivery.delivery_id, timestamp, body
            ),
        }
        try:
            response = self._client.post(
                hook.url, content=body, headers=headers, timeout=hook.timeout_ms / 1000
            )
        except httpx.TimeoutException:
            return None, f"no answer within {hook.timeout_ms} ms"
        except httpx.HTTPError as err:
            return None, f"{type(err).__name__}: {err}"
        return response.status_code, None

    def _done(self, delivery_id: str) -> None:
        with self._lock:
            self._unsent.discard(delivery_id)
            self._lock.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop sending; whatever is left stays ``pending`` in the store for the next resuming
        sender (``plugbox serve``) to carry on. A non-resuming one (``jobs run``) first waits,
        up to its longest timeout, for each of its deliveries to have had its first attempt."""
        wait_s = 0.0 if self._resume else self.longest_timeout_s + 1
        deadline = time.monotonic() + wait_s
        with self._lock:
            while self._unsent and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
            left = len(self._unsent)
        self._stop.set()
        self._wake.set()
        # An attempt in flight is not waited for on a host's stop (a receiver that never
        # answers would hold the shutdown for its whole timeout): the delivery keeps its lease,
        # and once that lapses the next sender makes the attempt again.
        self._thread.join(timeout=SHUTDOWN_JOIN_S if self._resume else self.longest_timeout_s + 5)
        if not self._thread.is_alive():
            self._client.close()
        pending = self._log.count("pending")
        if left or pending:
            self._emit("webhooks_left_pending", deliveries=pending, own_unsent=left)

    @property
    def longest_timeout_s(self) -> float:
        return max((h.timeout_ms for h in self._hooks.values()), default=0) / 1000


def _no_previous(_record: RunRecord) -> None:
    return None


def _gave_up(hook: WebhookConfig, attempts: int) -> str:
    window = timedelta(milliseconds=hook.retry_for_ms)
    return f"gave up after {attempts} attempt(s): the retry window ({window}) is over"


def _body(event: str, record: RunRecord, now: datetime) -> str:
    """The Standard Webhooks payload shape: ``type``, ``timestamp``, ``data`` = the run summary."""
    data = record.model_dump(mode="json", exclude=set(SUMMARY_EXCLUDED))
    return json.dumps(
        {"type": event, "timestamp": now.isoformat(), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
