"""The run store interface every backend implements, and the errors it raises.

Errors::

    LookupError
    └── RunLookupError          get/update of a run_id that is not stored
    ValueError
    └── RunExistsError          add of a run_id that is already stored
    RuntimeError
    ├── StoreClosedError        any call after close()
    ├── StoreUnavailableError   opening: the database cannot be reached or refused the login
    └── SchemaTooNewError       the database was written by a newer plugbox (see migrations)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from plugbox.host.store.records import (
    JobStats,
    JobTally,
    PauseState,
    RunCursor,
    RunRecord,
    RunStatus,
    Trigger,
)

Clock = Callable[[], datetime]

DEFAULT_LIMIT = 50


def system_clock() -> datetime:
    return datetime.now(UTC)


class RunLookupError(LookupError):
    def __init__(self, run_id: str, matches: Sequence[str] = ()) -> None:
        if matches:
            shown = ", ".join(matches[:5])
            message = f"{run_id!r} starts more than one run id ({shown}); give more of it"
        else:
            message = (
                f"no run with id {run_id!r} in the run store; `plugbox runs list --json` shows"
                " whole ids (a unique beginning of one is enough)"
            )
        super().__init__(message)
        self.run_id = run_id


class RunExistsError(ValueError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"a run with id {run_id!r} is already stored; use update() to change it")
        self.run_id = run_id


class StoreClosedError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the run store is closed")


class StoreUnavailableError(RuntimeError):
    """The database could not be opened; ``url`` has its password masked."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot open the run store at {url}: {reason}. Check that the database server is"
            " running and that database_url (or PLUGBOX_DATABASE_URL, or --db) names it"
        )
        self.url = url
        self.reason = reason


@runtime_checkable
class RunStore(Protocol):
    """Run history and per-job scheduler state.

    Implementations are safe to call from several threads at once. Lists are ordered newest first
    by :attr:`RunRecord.sort_at` (start time, else due time), ties broken by run_id descending.
    """

    def add(self, record: RunRecord) -> None:
        """Store a new run; :class:`RunExistsError` if its run_id is taken."""

    def update(self, record: RunRecord) -> None:
        """Replace the whole stored run with this run_id; :class:`RunLookupError` if absent."""

    def get(self, run_id: str) -> RunRecord:
        """The run with this id; :class:`RunLookupError` if absent."""

    def resolve_id(self, prefix: str) -> str:
        """The run id ``prefix`` names: the run with exactly that id, else the one run whose id
        starts with it; :class:`RunLookupError` (naming the candidates) otherwise."""

    def list(
        self,
        job: str | None = None,
        status: RunStatus | None = None,
        limit: int = DEFAULT_LIMIT,
        before: datetime | None = None,
        *,
        trigger: Trigger | None = None,
        since: datetime | None = None,
        cursor: RunCursor | None = None,
    ) -> builtins.list[RunRecord]:
        """Up to ``limit`` runs, newest first, filtered by every argument given.

        ``before`` (exclusive) and ``since`` (inclusive) bound :attr:`RunRecord.sort_at`;
        ``cursor`` continues a listing after its last run, ties included.
        """

    def running(self) -> builtins.list[RunRecord]:
        """Every run that is ``queued`` or ``running``, newest first."""

    def mark_interrupted(self, host_id: str, reason: str) -> builtins.list[RunRecord]:
        """Turn runs that ``host_id`` left queued or running into ``interrupted``; return them.

        Called at start-up, before the host runs anything: whatever that host id still has in
        flight was lost with the previous process. The scheduler decides which to retry.
        """

    def stats(self, job: str | None = None) -> dict[str, JobStats]:
        """Per job (or just ``job``): counts by status, last run, p50/p95 duration."""

    def tallies(self, jobs: Iterable[str] | None = None) -> dict[str, JobTally]:
        """Per job with stored runs (or each of ``jobs`` that has some): runs by status and the
        newest run. Unlike :meth:`stats`, its cost does not grow with the length of history."""

    def prune(self, older_than_days: float | None = None, keep_per_job: int | None = None) -> int:
        """Delete finished runs older than N days and/or beyond the newest N per job.

        Queued and running runs are never deleted. Returns how many runs were removed.
        """

    def set_paused(self, job: str, paused: bool, by: str | None = None) -> None:
        """Remember that ``job`` is paused (or not) across restarts, and who said so."""

    def pause_state(self, job: str) -> PauseState:
        """Whether ``job`` is paused and who changed it last (not paused if never touched)."""

    def paused_jobs(self) -> set[str]:
        """Every job currently paused."""

    def set_last_fire(self, job: str, when: datetime) -> None:
        """Remember the last scheduled fire time of ``job`` (misfire decisions read it)."""

    def last_successes(self) -> dict[str, datetime]:
        """Per job, when its latest successful run finished (UTC), as the store was told by
        every process writing to it; jobs that never succeeded are absent."""

    def last_fire(self, job: str) -> datetime | None:
        """The last fire time stored for ``job``, in UTC, or ``None``."""

    def close(self) -> None:
        """Release the store's resources; later calls raise :class:`StoreClosedError`."""


def check_limits(limit: int, older_than_days: float | None = None, keep: int | None = None) -> None:
    """Shared argument checks, so both stores refuse the same bad input the same way."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if older_than_days is not None and older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    if keep is not None and keep < 0:
        raise ValueError(f"keep_per_job must be >= 0, got {keep}")
