"""What one replica of ``plugbox serve`` hears from the others: pauses, reloads, queued fires,
cancels of its runs.

Operators talk to one replica (its HTTP API, ``plugbox plugins reload``), but every replica
schedules. Each change is in the shared store already — a paused job in ``job_state``, a reload as
a counter in ``serve_signals``, a trigger as a ``queued`` row, a cancel as ``cancelled_by`` on a
running row this replica holds — so a replica only has to look in
time. It looks every :data:`POLL_S`; on PostgreSQL it also LISTENs, and a NOTIFY from the replica
that made the change makes it look at once. If the listening connection drops, polling carries on
and listening is tried again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from plugbox.host.events import emit
from plugbox.host.store.queue import NOTIFY_CHANNEL

if TYPE_CHECKING:
    from plugbox.host.daemon import Daemon

log = logging.getLogger("plugbox.host")
#: The longest a replica takes to see a change made through another one, without NOTIFY.
POLL_S = 0.5


class Sync:
    """A thread keeping one daemon's plan in step with the shared store."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reloads: int | None = None
        self._listener: Any = None  # a psycopg connection LISTENing, on PostgreSQL

    def start(self) -> None:
        self._reloads = self._daemon.queue.generations().get("reload", 0)
        self._thread = threading.Thread(target=self._loop, name="plugbox-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_listener()

    def _loop(self) -> None:
        while not self._stop.is_set():
            heard = self._listen()
            if "queued" in heard:
                self._daemon._claims.set()
            try:
                self.poll()
            except Exception:  # the database away for a moment: the next turn tries again
                log.exception("reading the other replicas' changes failed")

    def poll(self) -> None:
        """Apply pauses, resumes and reloads made through any replica."""
        daemon = self._daemon
        paused = daemon.host.store.paused_jobs()
        with daemon._lock:
            held = daemon.plan.paused
            for job in paused - held:
                daemon.plan.pause(job)
            for job in held - paused:
                daemon.plan.resume(job)
        if paused != held:
            daemon._wake.set()
            emit("synced", paused=sorted(paused - held), resumed=sorted(held - paused))
        requests = daemon.queue.cancel_requests()
        if requests:
            daemon.cancel_requested(requests)
        reloads = daemon.queue.generations().get("reload", 0)
        if self._reloads is not None and reloads != self._reloads:
            daemon._reload.set()
            daemon._wake.set()
        self._reloads = reloads

    def _listen(self) -> set[str]:
        """Wait up to POLL_S for NOTIFYs (PostgreSQL) and return their payloads."""
        engine = self._daemon.host.store_engine
        if engine.dialect.name != "postgresql":
            self._stop.wait(POLL_S)
            return set()
        try:
            if self._listener is None:
                import psycopg

                url = make_url(engine.url).set(drivername="postgresql")
                self._listener = psycopg.connect(
                    url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
                )
                self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            return {n.payload for n in self._listener.notifies(timeout=POLL_S, stop_after=64)}
        except Exception:
            log.exception("listening for other replicas failed; polling until it works again")
            self._close_listener()
            self._stop.wait(POLL_S)
            return set()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except Exception:
                log.debug("closing the listening connection failed", exc_info=True)
