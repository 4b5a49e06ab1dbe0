"""The fencing token of a run: which fire, which attempt, under which lease.

When several ``plugbox serve`` replicas share a database, a replica cut off from it (a network
partition, a frozen VM) can still be running a job after its lease lapsed and another replica
retried the fire. Both runs may then write to the same outside system. A job that hands
``str(ctx.fencing_token)`` to that system lets it refuse the stale writer: tokens of one fire
order by (attempt, epoch), and the later retry always carries the larger pair.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FencingToken"]


class FencingToken(BaseModel):
    """(job, fire instant, attempt, lease epoch) of one run; ``str()`` gives its portable form.

    ``epoch`` counts the leases the fire's run row has been given (0 outside ``plugbox serve``,
    e.g. ``plugbox jobs run`` or the test harness, where nothing can take the run over).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str = Field(description="PLUGIN:JOB")
    scheduled_at: datetime = Field(description="the fire's scheduled instant, UTC")
    attempt: int = Field(ge=1)
    epoch: int = Field(0, ge=0)

    @field_validator("scheduled_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("scheduled_at needs a time zone")
        return value.astimezone(UTC)

    def supersedes(self, other: FencingToken) -> bool:
        """True when this token belongs to a later claim of the same fire than ``other``."""
        same_fire = (self.job, self.scheduled_at) == (other.job, other.scheduled_at)
        return same_fire and (self.attempt, self.epoch) > (other.attempt, other.epoch)

    def __str__(self) -> str:
        instant = self.scheduled_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"{self.job}@{instant}#{self.attempt}.{self.epoch}"
