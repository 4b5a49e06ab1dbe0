"""The host SIGKILLed at each point of a run's life, on SQLite and PostgreSQL alike.

A real ``plugbox serve`` runs ``faults:tick`` every 4 s (a first attempt sleeps 2.5 s, a retry is
quick; ``retries=1``, ``misfire="catch_up"``). Each test stops the host at one point, proves it
stopped there (the control), SIGKILLs it, starts it again and checks the history by fire key
(job, scheduled instant, attempt): every fire once per attempt, none left running, every run the
kill cut off recorded ``interrupted`` with its reason and retried.

The points are reached by real means, never a hook in the host: SIGSTOP (the host cannot record a
fire or an outcome while stopped, but its zygote and the run's child go on), and a lock on the
run's row that the host's final write has to wait for.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from tests.host import faults_harness as h

EVERY_S = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database per test, on each backend."""
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        return f"sqlite:///{tmp_path / 'db' / 'plugbox.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def serve(tmp_path: Path, db_url: str) -> Iterator[h.Serve]:
    site = tmp_path / "site"
    h.install(site)
    started = h.Serve(
        tmp_path / "host",
        db_url,
        f'workers = 2\nplugin_paths = ["{site}"]\n'
        f'[jobs."{h.JOB}"]\nschedule = "*/{EVERY_S} * * * * *"\n',
    )
    try:
        yield started
    finally:
        started.stop()


def first_running(url: str) -> h.RunRecord:
    return h.wait_for(
        lambda: next((r for r in h.history(url) if r.status == "running" and r.attempt == 1), None),
        what="a first attempt running",
    )


def wait_child_returned(children: list[psutil.Process]) -> None:
    """Until one of ``children`` ended: the run's child (a warm child waits for a run that
    cannot come while the host is stopped or blocked)."""

    def ended() -> bool:
        for child in children:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    return True
            except psutil.NoSuchProcess:
                return True
        return False

    h.wait_for(ended, timeout=30, what="the run's child to return")


def restart_and_settle(serve: h.Serve, cut: str) -> dict[datetime, list[h.RunRecord]]:
    """Start the host again, wait for the cut-off run's retry to end, stop; the history."""
    serve.start()

    def retried() -> bool:
        runs = h.history(serve.url)
        cut_off = next(r for r in runs if r.run_id == cut)
        return cut_off.status == "interrupted" and any(
            r.first_run_id == cut and r.attempt == 2 and r.status == "success" for r in runs
        )

    h.wait_for(retried, timeout=60, what="the interrupted run retried and finished")
    serve.stop()
    return h.accounted(h.history(serve.url))


def assert_interrupted_then_retried(serve: h.Serve, cut: str) -> None:
    by_instant = restart_and_settle(serve, cut)
    cut_off = h.run_of(serve.url, cut)
    assert cut_off.reason == "the host stopped while the run was active"
    attempts = sorted((r.attempt, r.status) for r in by_instant[cut_off.scheduled_at])
    assert attempts == [(1, "interrupted"), (2, "success")]
    # Handled by: the restarted host's recovery (interrupted) and the job's retry policy.
    assert serve.seen("interrupted", since_start=True, run=cut)
    assert serve.seen("retry_scheduled", since_start=True, after=cut)


def test_killed_before_the_fire_is_recorded(serve: h.Serve) -> None:
    serve.start()
    first_running(serve.url)  # the host works
    serve.process.send_signal(signal.SIGSTOP)
    stopped_at = datetime.now(UTC)
    recorded = {r.scheduled_at for r in h.history(serve.url)}
    # Two fire instants pass while the host cannot record them.
    h.wait_for(
        lambda: datetime.now(UTC) >= stopped_at + timedelta(seconds=2 * EVERY_S + 0.5),
        timeout=20,
        what="two fire instants to pass",
    )
    killed_at = datetime.now(UTC)
    assert {r.scheduled_at for r in h.history(serve.url)} == recorded  # control: none recorded
    serve.kill()
    serve.start()
    missed_window = (max(recorded), killed_at)

    def caught_up() -> list[h.RunRecord]:
        runs = h.history(serve.url)
        missed = [r for r in runs if missed_window[0] < r.scheduled_at <= missed_window[1]]
        return missed if len(missed) >= 2 and all(r.status == "success" for r in missed) else []

    missed = h.wait_for(caught_up, timeout=60, what="the missed fires caught up")
    serve.stop()
    by_instant = h.accounted(h.history(serve.url))
    # Handled by: the restarted host's misfire policy (catch_up) from the stored last fire.
    instants = sorted(by_instant)
    assert all(b - a == timedelta(seconds=EVERY_S) for a, b in itertools.pairwise(instants))
    assert {r.scheduled_at for r in missed} <= set(by_instant)
    assert all(r.trigger == "schedule" for r in missed)


def test_killed_while_the_run_runs(serve: h.Serve) -> None:
    serve.start()
    running = first_running(serve.url)
    assert h.run_child(serve)  # control: the run's child is alive as the host dies
    serve.kill()
    assert h.run_of(serve.url, running.run_id).status == "running"
    assert_interrupted_then_retried(serve, running.run_id)


def test_killed_after_the_child_returned_before_the_outcome_is_written(serve: h.Serve) -> None:
    serve.start()
    running = first_running(serve.url)
    children = h.run_child(serve)
    serve.process.send_signal(signal.SIGSTOP)
    wait_child_returned(children)
    # Control: the job's child is done, its outcome never reached the store.
    assert h.run_of(serve.url, running.run_id).status == "running"
    assert not serve.seen("finished", run=running.run_id)
    serve.kill()
    assert_interrupted_then_retried(serve, running.run_id)


def test_killed_during_the_outcome_write(serve: h.Serve) -> None:
    serve.start()
    running = first_running(serve.url)
    children = h.run_child(serve)
    with RowLocked(serve, running.run_id) as locked:
        wait_child_returned(children)
        h.wait_for(locked.waiting, timeout=30, what="the host waiting inside its outcome write")
        assert locked.status() == "running"  # control: the write has not gone through
        serve.kill()
    assert_interrupted_then_retried(serve, running.run_id)


class RowLocked:
    """Hold the store's lock on ``run_id``'s row (SQLite: the whole file) so the host's final
    write waits inside its transaction; :meth:`waiting` checks that the host waits there."""

    def __init__(self, serve: h.Serve, run_id: str) -> None:
        self.serve, self.url, self.run_id = serve, serve.url, run_id

    def __enter__(self) -> RowLocked:
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
            self.conn.isolation_level = None
            self.conn.execute("BEGIN EXCLUSIVE")
            return self
        import psycopg

        self.pg = psycopg.connect(self.url)
        self.pg.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (self.run_id,))
        self.watch = psycopg.connect(self.url, autocommit=True)
        return self

    def status(self) -> str:
        """The run's stored status, read through the lock's own connection."""
        if self.url.startswith("sqlite"):
            query = "SELECT status FROM runs WHERE run_id = ?"
            row = self.conn.execute(query, (self.run_id,)).fetchone()
        else:
            query = "SELECT status FROM runs WHERE run_id = %s"
            row = self.pg.execute(query, (self.run_id,)).fetchone()
        assert row is not None
        return str(row[0])

    def waiting(self) -> bool:
        return self._sqlite_waiting() if self.url.startswith("sqlite") else self._pg_waiting()

    def _pg_waiting(self) -> bool:
        # The final write sets the status; a lease renewal (also waiting on the row) does not.
        rows = self.watch.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query ~ '^UPDATE runs SET .*\\mstatus='"
        ).fetchall()
        return bool(rows)

    def _sqlite_waiting(self) -> bool:
        # SQLite's busy handler sleeps in clock_nanosleep; an idle serve never does (its threads
        # wait on futexes and sockets). With the run's child returned and no "finished" line,
        # the sleeper is the worker inside its final write, waiting for our lock.
        return h.sleeping(self.serve.pid) and not self.serve.seen("finished", run=self.run_id)

    def __exit__(self, *exc: object) -> None:
        if self.url.startswith("sqlite"):
            self.conn.execute("ROLLBACK")
            self.conn.close()
            return
        self.pg.rollback()
        self.pg.close()
        self.watch.close()
