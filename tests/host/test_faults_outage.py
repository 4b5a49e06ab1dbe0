"""``StoreOutage`` on its own: the words for each condition, the bound, one line each way.

The real outages, through a real ``plugbox serve``, are in test_faults_store.py; these pin what
those cannot reach cheaply (10,000 outcomes held, a condition no test database produces).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import exc

from plugbox.host.daemon_outage import StoreOutage, condition
from plugbox.host.store import RunRecord


def operational(message: str) -> exc.OperationalError:
    return exc.OperationalError("UPDATE runs SET ...", {}, sqlite3.OperationalError(message))


def record(n: int) -> RunRecord:
    return RunRecord(run_id=f"r{n}", job="p:j", status="success", scheduled_at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("database is locked", "the database is locked by another writer"),
        ("database or disk is full", "the disk holding the database is full"),
        (
            "could not write to file: No space left on device",
            "the disk holding the database is full",
        ),
        (
            'connection to server on socket "/x/.s.PGSQL.5432" failed: No such file or directory',
            "the database server does not answer (stopped, restarting or unreachable)",
        ),
        ("something new", "something new"),
    ],
)
def test_each_condition_in_the_operators_words(message: str, words: str) -> None:
    assert condition(operational(message)) == words


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_one_line_when_it_goes_one_when_it_is_back_not_before_the_held_are_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outage = StoreOutage()
    assert outage.problem() is None
    outage.failed(operational("database is locked"), "writing")
    outage.failed(operational("database is locked"), "claiming")
    assert outage.hold(record(1), epoch=1)
    outage.answered()  # an outcome is still held: not back yet
    problem = outage.problem()
    assert problem is not None and "locked" in problem and "1 run outcomes" in problem
    (held,) = outage.held()
    outage.written(held)
    outage.answered()
    assert outage.problem() is None and not outage.down
    events = lines(capsys)
    assert [e["event"] for e in events] == ["store_unavailable", "store_available"]
    assert events[1]["outcomes_written"] == 1


def test_past_the_bound_each_outcome_dropped_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    outage = StoreOutage(hold_max=2)
    assert outage.hold(record(1), 1) and outage.hold(record(2), 1)
    assert not outage.hold(record(3), 1)
    (dropped,) = lines(capsys)
    assert dropped["event"] == "outcome_dropped" and dropped["run"] == "r3"
    assert [h.record.run_id for h in outage.held()] == ["r1", "r2"]
