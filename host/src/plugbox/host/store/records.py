"""The run record — one row of run history — and the per-job statistics built from it.

Every datetime is made an aware UTC value at validation time, so by the time a record reaches a
store the same instant can only be spelt one way (12:00+02:00 and 10:00Z become equal, identical
values). A naive datetime is refused: guessing its zone is how history ends up two hours off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    computed_field,
    field_validator,
    model_validator,
)

from plugbox.sandbox import Access, ErrorInfo, Event, LogEntry

RunStatus = Literal[
    "queued",
    "running",
    "success",
    "failed",
    "timeout",
    "killed",
    "skipped",
    "cancelled",
    "interrupted",
]
Trigger = Literal["schedule", "manual", "startup", "retry"]

#: Runs in these states are not over; a host that dies leaves them behind.
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running"})

#: What a run *summary* leaves out (``runs list --json``, webhook payloads): the bulky parts.
SUMMARY_EXCLUDED: frozenset[str] = frozenset({"log", "output", "events"})

MAX_LOG_ENTRIES = 1_000
MAX_EVENTS = 1_000
MAX_OUTPUT_CHARS = 256 * 1024


def utc(value: datetime, what: str = "datetime") -> datetime:
    """``value`` as an aware UTC datetime; a naive one is an error naming ``what``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value.isoformat()} has no time zone; give an aware datetime")
    return value.astimezone(UTC)


class RunRecord(BaseModel):
    """One run of one job: what was asked, what happened, and what it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(min_length=1, max_length=64)
    # job, plugin_id/job_id and first_run_id may be left out: the validator derives them.
    job: str = Field(default="", min_length=3, max_length=255, description="PLUGIN:JOB")
    plugin_id: str = Field(default="", min_length=1)
    job_id: str = Field(default="", min_length=1)
    status: RunStatus
    trigger: Trigger = "schedule"
    attempt: int = Field(default=1, ge=1)
    first_run_id: str = Field(default="", min_length=1, max_length=64)
    scheduled_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    result: JsonValue = None
    error: ErrorInfo | None = None
    peak_memory_mb: float | None = None
    cpu_ms: int | None = Field(default=None, ge=0)
    events: tuple[Event, ...] = ()
    events_truncated: bool = False
    log: tuple[LogEntry, ...] = ()
    log_truncated: bool = False
    output: str = ""
    output_truncated: bool = False
    enforcement: dict[str, JsonValue] | None = None
    denials: tuple[Access, ...] = Field(
        default=(), description="runtime calls the run was refused, each with the deciding rule"
    )
    reason: str | None = Field(default=None, description="why skipped, cancelled or interrupted")
    kill_reason: str | None = None  # the sandbox's KillReason, a short word
    # Bounded like its column: PostgreSQL refuses a longer value where SQLite would keep it.
    host_id: str | None = Field(default=None, max_length=255)
    requested_by: str | None = Field(
        default=None,
        max_length=255,
        description="who asked for the run: the API token's name for a trigger through the HTTP"
        " API; none for the scheduler and the CLI",
    )
    cancelled_by: str | None = Field(
        default=None,
        max_length=255,
        description="who cancelled the run: the API token's name (POST /runs/{id}/cancel)",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_ids(cls, data: Any) -> Any:
        # `job`, `plugin_id`/`job_id` and `first_run_id` are derivable; accept either spelling.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        job, plugin_id, job_id = data.get("job"), data.get("plugin_id"), data.get("job_id")
        if job is None and plugin_id is not None and job_id is not None:
            data["job"] = f"{plugin_id}:{job_id}"
        elif isinstance(job, str) and ":" in job and plugin_id is None and job_id is None:
            data["plugin_id"], data["job_id"] = job.split(":", 1)
        if data.get("first_run_id") is None and data.get("run_id") is not None:
            data["first_run_id"] = data["run_id"]
        # Bounds are applied here, not by each store, so both stores keep exactly the same thing
        # (and a million log lines are cut before they are validated one by one).
        for name, limit in (("log", MAX_LOG_ENTRIES), ("events", MAX_EVENTS)):
            items = data.get(name)
            if isinstance(items, list | tuple) and len(items) > limit:
                data[name], data[f"{name}_truncated"] = tuple(items[:limit]), True
        output = data.get("output")
        if isinstance(output, str) and len(output) > MAX_OUTPUT_CHARS:
            data["output"], data["output_truncated"] = output[:MAX_OUTPUT_CHARS], True
        # PostgreSQL text cannot hold NUL, and a job may print one: every store keeps U+FFFD in
        # its place (JSON fields keep NUL as the escape \u0000, which both databases accept).
        for name in ("output", "reason"):
            value = data.get(name)
            if isinstance(value, str) and "\x00" in value:
                data[name] = value.replace("\x00", "\ufffd")
        return data

    @field_validator("scheduled_at", "started_at", "finished_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @model_validator(mode="after")
    def _check(self) -> RunRecord:
        if ":" not in self.job:
            raise ValueError(
                f"job {self.job!r} is not 'PLUGIN:JOB'; give job, or plugin_id and job_id"
            )
        if self.job != f"{self.plugin_id}:{self.job_id}":
            raise ValueError(
                f"job {self.job!r} does not match plugin_id {self.plugin_id!r} "
                f"and job_id {self.job_id!r}"
            )
        if self.attempt == 1 and self.first_run_id != self.run_id:
            raise ValueError(
                f"run {self.run_id!r} is attempt 1, so first_run_id must be itself, "
                f"not {self.first_run_id!r}"
            )
        if self.attempt > 1 and self.first_run_id == self.run_id:
            raise ValueError(
                f"run {self.run_id!r} is attempt {self.attempt}; first_run_id must name "
                "the first attempt"
            )
        if self.status in ACTIVE_STATUSES and self.finished_at is not None:
            raise ValueError(f"run {self.run_id!r} is {self.status} but has a finished_at")
        if (
            self.started_at is not None
            and self.finished_at is not None
            and self.finished_at < self.started_at
        ):
            raise ValueError(f"run {self.run_id!r} finished before it started")
        return self

    @property
    def sort_at(self) -> datetime:
        """The instant history is ordered by: when it started, or when it was due if it never did."""
        return self.started_at or self.scheduled_at


#: The statuses a success rate is taken over: runs that started and ended on their own merits.
#: Skipped and cancelled runs say nothing about the job, and active ones have no outcome yet.
RATED_STATUSES: frozenset[str] = frozenset(
    {"success", "failed", "timeout", "killed", "interrupted"}
)


def success_rate(counts: dict[str, int]) -> float | None:
    """success / (success + failed + timeout + killed + interrupted); None before any of them."""
    rated = sum(n for status, n in counts.items() if status in RATED_STATUSES)
    return None if rated == 0 else counts.get("success", 0) / rated


class JobTally(BaseModel):
    """One job's runs counted by status, and its newest run: what a job list shows.

    The SQL store keeps the counts current in the transaction of every write (ADR 0030), so a
    job list reads one row per job and status, never the job's history; :class:`JobStats` adds
    the duration percentiles, which do need the history.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    counts: dict[str, int] = Field(description="runs by status; absent statuses are 0")
    last_run: RunRecord | None

    @computed_field(  # type: ignore[prop-decorator]
        description="see JobStats.success_rate"
    )
    @property
    def success_rate(self) -> float | None:
        return success_rate(self.counts)

    @property
    def total(self) -> int:
        """Every stored run of the job, whatever its status."""
        return sum(self.counts.values())


class JobStats(BaseModel):
    """What one job's retained history adds up to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    total: int
    counts: dict[str, int] = Field(description="runs by status; absent statuses are 0")
    last_run: RunRecord | None
    p50_duration_ms: int | None
    p95_duration_ms: int | None

    @computed_field(  # type: ignore[prop-decorator]
        description="success / (success + failed + timeout + killed + interrupted), 0..1;"
        " null before the first such run"
    )
    @property
    def success_rate(self) -> float | None:
        return success_rate(self.counts)


class PauseState(BaseModel):
    """Whether a job is paused, and who last paused or resumed it (kept across restarts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    paused: bool
    changed_by: str | None = Field(
        default=None, description="the API token's name; none when the CLI changed it"
    )
    changed_at: datetime | None = None


class RunCursor(BaseModel):
    """A place in the newest-first run history: the runs strictly older than this one.

    Both parts are needed: runs may share a start instant, and a cursor of the instant alone
    would skip the rest of a tie across a page boundary.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sort_at: datetime
    run_id: str

    @classmethod
    def after(cls, record: RunRecord) -> RunCursor:
        return cls(sort_at=record.sort_at, run_id=record.run_id)

    @field_validator("sort_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return utc(value, "cursor")


def percentile(sorted_values: Sequence[int], fraction: float) -> int | None:
    """Nearest-rank percentile of already-sorted values (``None`` when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def job_stats(
    job: str, counts: dict[str, int], last_run: RunRecord | None, durations: list[int]
) -> JobStats:
    """Build one job's :class:`JobStats`; ``durations`` need not be sorted."""
    durations = sorted(durations)
    return JobStats(
        job=job,
        total=sum(counts.values()),
        counts=counts,
        last_run=last_run,
        p50_duration_ms=percentile(durations, 0.50),
        p95_duration_ms=percentile(durations, 0.95),
    )


def interrupted(record: RunRecord, reason: str, now: datetime) -> RunRecord:
    """``record`` as a run its host lost: ``interrupted``, finished ``now``, with the reason."""
    return record.model_copy(
        update={"status": "interrupted", "finished_at": max(now, record.sort_at), "reason": reason}
    )
