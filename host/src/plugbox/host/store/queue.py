"""The fire queue: fires waiting as ``queued`` rows, claimed under a lease, recovered when it lapses.

Every replica of ``plugbox serve`` sharing one database works from these rows (ADR 0020):

- **enqueue**: a due fire becomes a ``queued`` run whose ``fire_key`` — (job, scheduled instant in
  UTC, attempt) — is unique, so the second replica's insert of the same fire does nothing;
- **claim**: in one transaction a replica takes up to as many due rows as it has idle workers
  (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, and a transaction-scoped advisory lock per job so two
  replicas never decide about the same job's concurrency at once; SQLite: its single writer),
  decides about each with :func:`plugbox.host.scheduler.admission.admit`, and marks the chosen
  ones ``running`` with a lease (owner, ``lease_until``, ``lease_epoch``);
- **renew**: the owner pushes ``lease_until`` forward while it runs them;
- **recover**: any replica turns ``running`` rows whose lease lapsed into ``interrupted``, raising
  the epoch, so the owner's late final write is refused (:meth:`finish` fences on the epoch).

Time is the database's (``clock_timestamp()`` on PostgreSQL; SQLite is one host's file, so its
clock is the host's): a replica whose clock is off neither starts a fire early nor takes a lease
that is still being renewed.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from plugbox.host.scheduler.admission import Admission, Waiting
from plugbox.host.store import dialect
from plugbox.host.store.queue_sql import (
    advance_last_fire,
    advance_last_fires,
    lease_held,
    move_tallies,
    running_counts,
    running_ids,
    try_job_locks,
    update_runs,
    waiting_instants,
)
from plugbox.host.store.records import RunRecord, interrupted
from plugbox.host.store.sql import (
    _from_row,
    _note_success,
    _tally,
    _to_row,
    from_us,
    job_tallies,
    runs,
    serve_signals,
    to_us,
)

#: Namespace (first key) of the per-job advisory locks a PostgreSQL claim takes.
JOB_LOCK_NAMESPACE = int.from_bytes(b"pbox", "big", signed=True)

Decide = Callable[[Waiting, int, Sequence[datetime], datetime], Admission]


def fire_key(job: str, scheduled_at: datetime, attempt: int) -> str:
    """The identity of one fire across replicas: (job, scheduled instant in UTC, attempt)."""
    return f"{job}@{to_us(scheduled_at)}#{attempt}"


@dataclass(frozen=True, slots=True)
class Enqueue:
    """A fire to store ``queued``: its record, its key (None: never a duplicate), its order."""

    record: RunRecord
    key: str | None
    priority: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A run this replica now holds the lease on; ``record`` is ``running`` as stored."""

    record: RunRecord
    epoch: int
    priority: int


#: At most this many batches of due rows are read by one claim.
MAX_BATCHES = 8


@dataclass
class _ClaimState:
    """What one claim transaction knows so far."""

    now_us: int
    held: dict[str, int]
    seen: set[str] = field(default_factory=set)
    locked: set[str] = field(default_factory=set)  # jobs this claim decides about
    busy: set[str] = field(default_factory=set)  # jobs another claim is deciding about
    running: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, builtins.list[datetime]] = field(default_factory=dict)
    # Decided but not yet written: flushed set-based when the claim ends (queue_sql).
    skip_rows: builtins.list[dict[str, Any]] = field(default_factory=list)
    start_rows: builtins.list[dict[str, Any]] = field(default_factory=list)
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ClaimResult:
    started: list[Claimed]
    skipped: list[RunRecord]  #: refused at start (concurrency, misfire): stored final
    replace: list[str]  #: run ids a ``replace`` fire asks to cancel


class FireQueue:
    """The queue of one run store's database; safe to share between threads."""

    def __init__(self, engine: Engine, *, owner: str, host_id: str, lease_s: float) -> None:
        self._engine = engine
        self._writer = dialect.writer(engine)
        self._postgresql = dialect.is_postgresql(engine)
        self.owner = owner  #: this process, in lease_owner
        self.host_id = host_id
        self.lease = timedelta(seconds=lease_s)

    # -- time ----------------------------------------------------------------------------
    def _now_us(self, conn: Connection) -> int:
        if self._postgresql:
            query = text("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
            return int(conn.execute(query).scalar_one())
        return to_us(datetime.now(UTC))

    def now(self) -> datetime:
        """The database's current time (the host's for SQLite)."""
        with self._engine.connect() as conn:
            return from_us(self._now_us(conn))

    # -- enqueue ---------------------------------------------------------------------------
    def enqueue(
        self, record: RunRecord, *, key: str | None, priority: int, due_at: datetime
    ) -> bool:
        """Store ``record`` (``queued``) as a claimable fire; False when ``key`` is stored already
        (another replica recorded this fire first)."""
        row = {**_to_row(record), "fire_key": key, "priority": priority, "due_at_us": to_us(due_at)}
        try:
            with self._writer.begin() as conn:
                conn.execute(insert(runs).values(row))
                _tally(conn, record.job, None, record.status)
                if record.trigger == "schedule":
                    advance_last_fire(conn, record.job, to_us(record.scheduled_at))
        except IntegrityError:
            return False
        return True

    def enqueue_many(self, fires: Sequence[Enqueue]) -> builtins.list[str]:
        """Store many ``queued`` fires in one transaction (what the scheduler loop does with
        every fire due at one instant); return the run ids stored. A fire whose key is stored
        already is left out, as in :meth:`enqueue`."""
        if not fires:
            return []
        rows = [
            {
                **_to_row(f.record),
                "fire_key": f.key,
                "priority": f.priority,
                "due_at_us": to_us(f.due_at),
            }
            for f in fires
        ]
        insert_into = postgresql.insert if self._postgresql else sqlite.insert
        added: builtins.list[str] = []
        latest: dict[str, int] = {}
        # executemany (SQLAlchemy's "insertmanyvalues"): compiled once and cached, where a
        # multi-row VALUES of a new length each time was compiled anew on every call.
        statement = (
            insert_into(runs)
            .on_conflict_do_nothing(index_elements=["fire_key"])
            .returning(runs.c.run_id)
        )
        with self._writer.begin() as conn:
            added.extend(str(run_id) for run_id in conn.execute(statement, rows).scalars())
            stored = set(added)
            moves: Counter[tuple[str, str]] = Counter()
            for f in fires:
                if f.record.run_id not in stored:
                    continue
                moves[f.record.job, f.record.status] += 1
                if f.record.trigger == "schedule":
                    at = to_us(f.record.scheduled_at)
                    latest[f.record.job] = max(at, latest.get(f.record.job, at))
            move_tallies(conn, moves)
            advance_last_fires(conn, latest)
        return added

    def run_count(self, job: str) -> int:
        """Runs of ``job`` in the history that are not waiting (its ``ctx.run_count``)."""
        # From the per-job tallies (ADR 0030): a few rows, never a count over the history.
        query = select(func.coalesce(func.sum(job_tallies.c.runs), 0)).where(
            job_tallies.c.job == job, job_tallies.c.status != "queued"
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def depth(self) -> int:
        """How many fires wait (due or not)."""
        query = select(func.count()).select_from(runs).where(runs.c.status == "queued")
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- claim -----------------------------------------------------------------------------
    def claim(
        self,
        limit: int,
        *,
        plugins: Collection[str],
        held: Mapping[str, int],
        caps: Mapping[str, int],
        decide: Decide,
    ) -> ClaimResult:
        """Start up to ``limit`` due fires of ``plugins`` (those this replica can run).

        ``held``: runs each plugin holds on this replica now; ``caps``: the most it may hold
        (``[plugins.ID] max_workers``). Fires refused by ``decide`` are stored ``skipped``.
        """
        result = ClaimResult([], [], [])
        if limit <= 0 or not plugins:
            return result
        held = dict(held)
        batch = limit * 4 + 8  # room for fires skipped or held back by a plugin's cap
        with self._writer.begin() as conn:
            now_us = self._now_us(conn)
            state = _ClaimState(now_us, held)
            self._decide_due(conn, limit, plugins, batch, state, caps, decide, result)
            update_runs(conn, state.skip_rows)
            update_runs(conn, state.start_rows)
            move_tallies(conn, state.moves)
        return result

    def _decide_due(
        self,
        conn: Connection,
        limit: int,
        plugins: Collection[str],
        batch: int,
        state: _ClaimState,
        caps: Mapping[str, int],
        decide: Decide,
        result: ClaimResult,
    ) -> None:
        # Several batches when fires are refused: under overload the oldest due rows are
        # mostly stale (misfire), and one batch of them must not starve the fresh ones.
        for _ in range(MAX_BATCHES):
            rows = self._due_rows(conn, state.now_us, plugins, state.seen, batch)
            state.seen.update(row["run_id"] for row in rows)
            rows = self._lock_jobs(conn, rows, state)
            for row in rows:
                if len(result.started) >= limit:
                    return
                self._admit(conn, row, state, caps, decide, result)
            if len(state.seen) % batch or len(result.started) >= limit:
                return  # the last batch was not full: nothing more is due

    def _due_rows(
        self,
        conn: Connection,
        now_us: int,
        plugins: Collection[str],
        seen: set[str],
        batch: int,
    ) -> builtins.list[RowMapping]:
        priority = func.coalesce(runs.c.priority, 5)
        query = (
            select(runs)
            .where(
                runs.c.status == "queued",
                or_(runs.c.due_at_us.is_(None), runs.c.due_at_us <= now_us),
                runs.c.plugin_id.in_(sorted(plugins)),
            )
            .order_by(priority.desc(), runs.c.due_at_us, runs.c.run_id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        if seen:
            query = query.where(runs.c.run_id.not_in(sorted(seen)))
        return list(conn.execute(query).mappings())

    def _lock_jobs(
        self, conn: Connection, rows: builtins.list[RowMapping], state: _ClaimState
    ) -> builtins.list[RowMapping]:
        """Take this transaction's lock on each new job of ``rows`` (PostgreSQL) and load what
        deciding about them needs; rows of jobs another claim is deciding about are left."""
        fresh = sorted({row["job"] for row in rows} - state.locked - state.busy)
        # try, never wait: a claim waiting on another's job lock while holding its own could
        # deadlock; the job's fires simply wait for the next claim.
        taken = try_job_locks(conn, fresh, JOB_LOCK_NAMESPACE) if self._postgresql else set(fresh)
        state.locked.update(taken)
        state.busy.update(set(fresh) - taken)
        mine = [job for job in fresh if job in state.locked]
        if mine:
            state.running.update(running_counts(conn, mine))
            state.waiting.update(waiting_instants(conn, mine))
        return [row for row in rows if row["job"] in state.locked]

    def _admit(
        self,
        conn: Connection,
        row: RowMapping,
        state: _ClaimState,
        caps: Mapping[str, int],
        decide: Decide,
        result: ClaimResult,
    ) -> None:
        plugin = row["plugin_id"]
        if plugin in caps and state.held.get(plugin, 0) >= caps[plugin]:
            return  # stays queued: another replica, or a later claim, may start it
        record = _from_row(row)
        now = from_us(state.now_us)
        fire = Waiting(record.job, record.trigger, record.scheduled_at)
        admission = decide(
            fire, state.running.get(record.job, 0), state.waiting.get(record.job, []), now
        )
        if admission.decision == "skip":
            skipped = record.model_copy(
                update={"status": "skipped", "finished_at": now, "reason": admission.reason}
            )
            state.skip_rows.append(_to_row(skipped))
            state.moves[record.job, record.status] -= 1
            state.moves[record.job, skipped.status] += 1
            result.skipped.append(skipped)
            return
        if admission.decision == "replace":
            result.replace.extend(running_ids(conn, record.job))
            # and what this claim started of the job already (written when the claim ends)
            result.replace.extend(r["run_id"] for r in state.start_rows if r["job"] == record.job)
        epoch = (row["lease_epoch"] or 0) + 1
        started = record.model_copy(
            update={"status": "running", "started_at": now, "host_id": self.host_id}
        )
        state.start_rows.append(
            {
                **_to_row(started),
                "lease_owner": self.owner,
                "lease_until_us": state.now_us + self.lease // timedelta(microseconds=1),
                "lease_epoch": epoch,
            }
        )
        state.moves[record.job, record.status] -= 1
        state.moves[record.job, started.status] += 1
        state.running[record.job] = state.running.get(record.job, 0) + 1
        state.held[plugin] = state.held.get(plugin, 0) + 1
        result.started.append(Claimed(started, epoch, int(row["priority"] or 5)))

    def release(self, run_ids: Collection[str]) -> None:
        """Give claimed runs that never started back to the queue (this replica is stopping)."""
        if not run_ids:
            return
        held = (runs.c.lease_owner == self.owner, runs.c.status == "running")
        with self._writer.begin() as conn:
            found = conn.execute(
                select(runs.c.run_id, runs.c.job).where(runs.c.run_id.in_(sorted(run_ids)), *held)
            ).all()
            for run_id, job in found:
                done = conn.execute(
                    update(runs)
                    .where(runs.c.run_id == run_id, *held)
                    .values(
                        status="queued", started_at_us=None, lease_owner=None, lease_until_us=None
                    )
                )
                if done.rowcount:
                    _tally(conn, job, "running", "queued")

    def cancel_queued(self, cancelled: RunRecord) -> bool:
        """Store ``cancelled`` over its run if that is still waiting; False when a replica
        claimed it first."""
        with self._writer.begin() as conn:
            done = conn.execute(
                update(runs)
                .where(runs.c.run_id == cancelled.run_id, runs.c.status == "queued")
                .values(_to_row(cancelled))
            )
            if done.rowcount:
                _tally(conn, cancelled.job, "queued", cancelled.status)
        return bool(done.rowcount)

    def request_cancel(self, run_id: str, by: str) -> bool:
        """Ask the replica running ``run_id`` to cancel it (any replica may ask): marks the row
        with who asked; the owner hears it (:meth:`cancel_requests`) within a poll, at once on
        PostgreSQL. False when no replica holds the run (it ended, or a ``plugbox jobs run``
        process runs it without a lease)."""
        with self._writer.begin() as conn:
            done = conn.execute(
                update(runs)
                .where(
                    runs.c.run_id == run_id,
                    runs.c.status == "running",
                    runs.c.lease_owner.is_not(None),
                )
                .values(cancelled_by=by)
            )
        if done.rowcount:
            self.notify("cancel")
        return bool(done.rowcount)

    def cancel_requests(self) -> dict[str, str]:
        """Runs this replica holds that someone asked to cancel: run id -> who asked."""
        query = select(runs.c.run_id, runs.c.cancelled_by).where(
            runs.c.status == "running",
            runs.c.lease_owner == self.owner,
            runs.c.cancelled_by.is_not(None),
        )
        with self._engine.connect() as conn:
            return {str(run_id): str(by) for run_id, by in conn.execute(query)}

    # -- leases ----------------------------------------------------------------------------
    def renew(self, leases: Mapping[str, int]) -> set[str]:
        """Extend this replica's leases on ``leases`` (run id → epoch); return the run ids whose
        lease is no longer ours (recovered by another replica: stop them, write nothing)."""
        if not leases:
            return set()
        with self._writer.begin() as conn:
            now_us = self._now_us(conn)
            until = now_us + self.lease // timedelta(microseconds=1)
            statement = (
                update(runs)
                .where(
                    tuple_(runs.c.run_id, runs.c.lease_epoch).in_(sorted(leases.items())),
                    runs.c.status == "running",
                    runs.c.lease_owner == self.owner,
                )
                .values(lease_until_us=until)
                .returning(runs.c.run_id)
            )
            kept = {str(run_id) for run_id in conn.execute(statement).scalars()}
        return set(leases) - kept

    def finish(self, record: RunRecord, epoch: int) -> bool:
        """Store ``record`` (this replica's write of a run it holds) unless the lease was lost:
        False when a recovery took the run first (its epoch moved on): the fencing check."""
        with self._writer.begin() as conn:
            done = conn.execute(
                update(runs)
                .where(*lease_held(record.run_id, epoch, self.owner))
                .values({**_to_row(record), "lease_until_us": None})
            )
            if done.rowcount:
                move_tallies(
                    conn, Counter({(record.job, "running"): -1, (record.job, record.status): 1})
                )
            if done.rowcount and record.status == "success" and record.finished_at is not None:
                _note_success(conn, record)
        return bool(done.rowcount)

    def recover(self, reason: str, *, restarted: bool = False) -> builtins.list[RunRecord]:
        """Turn ``running`` runs whose lease lapsed (by the database's clock) into
        ``interrupted`` and return them; with ``restarted`` (before this process claimed
        anything), also every run of this host id: a previous process under the same host id
        left it (host ids must differ between replicas, docs/deploy.md)."""
        with self._writer.begin() as conn:
            now_us = self._now_us(conn)
            lapsed = and_(runs.c.lease_until_us.is_not(None), runs.c.lease_until_us < now_us)
            if restarted:  # what a previous process under this host id left running
                lapsed = or_(lapsed, runs.c.host_id == self.host_id)
            query = (
                select(runs)
                .where(runs.c.status == "running", lapsed)
                .order_by(runs.c.sort_at_us, runs.c.run_id)
                .with_for_update(skip_locked=True)
            )
            changed = []
            for row in conn.execute(query).mappings():
                record = interrupted(_from_row(row), reason, from_us(now_us))
                conn.execute(
                    update(runs)
                    .where(runs.c.run_id == record.run_id)
                    .values(
                        {
                            **_to_row(record),
                            "lease_until_us": None,
                            "lease_epoch": (row["lease_epoch"] or 0) + 1,
                        }
                    )
                )
                _tally(conn, record.job, "running", record.status)
                changed.append(record)
        return changed

    # -- signals between replicas -----------------------------------------------------------
    def signal(self, name: str) -> None:
        """Tell every replica that ``name`` happened (e.g. ``reload``): they poll
        :meth:`generations`, and on PostgreSQL hear a NOTIFY at once."""
        with self._writer.begin() as conn:
            done = conn.execute(
                update(serve_signals)
                .where(serve_signals.c.name == name)
                .values(generation=serve_signals.c.generation + 1)
            )
            if not done.rowcount:
                dialect.upsert(conn, serve_signals, {"name": name, "generation": 1}, defaults={})
            if self._postgresql:
                conn.execute(
                    text("SELECT pg_notify(:channel, :name)"),
                    {"channel": NOTIFY_CHANNEL, "name": name},
                )

    def generations(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            return {str(n): int(g) for n, g in conn.execute(select(serve_signals))}

    def notify(self, what: str) -> None:
        """PostgreSQL: wake every replica's dispatcher now (a fire was queued, a job paused);
        SQLite: nothing, the replicas' polling sees it."""
        if not self._postgresql:
            return
        with self._engine.connect() as conn:
            conn.execute(
                text("SELECT pg_notify(:channel, :what)"), {"channel": NOTIFY_CHANNEL, "what": what}
            )
            conn.commit()


#: The PostgreSQL LISTEN/NOTIFY channel replicas wake each other on.
NOTIFY_CHANNEL = "plugbox_serve"
