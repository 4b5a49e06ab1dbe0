"""What an operator may ask a running host to do, and why it may refuse.

The HTTP API (:mod:`plugbox.host.api`) calls these; :class:`~plugbox.host.daemon.Daemon` carries
them out, because a trigger, a pause or a cancel has to reach the scheduler and the workers of
the process that runs the jobs, not only the store.

Errors::

    LookupError
    └── UnknownJobError (plugbox.host.services)   no such PLUGIN:JOB
    RuntimeError
    └── OperationRefusedError                          the job or run is in a state that forbids it
        ├── JobPausedError                        trigger of a paused job
        ├── JobDisabledError                      trigger of a job the manifest or operator disabled
        ├── RunFinishedError                      cancel of a run that has ended
        └── RunElsewhereError                     cancel of a run another process is running
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, computed_field

from plugbox.host.store import PauseState, RunRecord


class OperationRefusedError(RuntimeError):
    """The request names something that exists but is in a state that forbids it."""


class JobPausedError(OperationRefusedError):
    def __init__(self, job: str) -> None:
        super().__init__(
            f"{job} is paused, so it is not triggered; resume it first (POST /jobs/{job}/resume)"
        )


class JobDisabledError(OperationRefusedError):
    def __init__(self, job: str) -> None:
        super().__init__(
            f"{job} is disabled (enabled = false in its manifest or in plugbox.toml"
            f' [jobs."{job}"]); enable it there to trigger it'
        )


class RunFinishedError(OperationRefusedError):
    def __init__(self, record: RunRecord) -> None:
        super().__init__(
            f"run {record.run_id} of {record.job} has already ended ({record.status});"
            " there is nothing to cancel"
        )


class RunElsewhereError(OperationRefusedError):
    def __init__(self, record: RunRecord) -> None:
        super().__init__(
            f"run {record.run_id} of {record.job} is {record.status} in a `plugbox jobs run`"
            f" process (host {record.host_id or 'unknown'}), not under `plugbox serve`; only"
            " that process can stop it (Ctrl-C where it runs)"
        )


class Readiness(BaseModel):
    """Whether the host does its work: the three things ``GET /readyz`` checks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plugins_discovered: bool
    store_reachable: bool
    scheduler_ticking: bool
    detail: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ready(self) -> bool:
        return self.plugins_discovered and self.store_reachable and self.scheduler_ticking


class Operations(Protocol):
    """The running host, as the HTTP API may change it. Every change names who asked."""

    def trigger(self, job: str, requested_by: str) -> RunRecord:
        """Queue a manual run of ``job`` now; its ``queued`` record (the run id to follow)."""

    def wait(self, run_id: str, timeout_s: float) -> RunRecord:
        """The run's record once it has ended, or as it is after ``timeout_s`` seconds."""

    def set_paused(self, job: str, paused: bool, by: str) -> PauseState:
        """Pause or resume ``job`` in the store and in the running scheduler."""

    def cancel(self, run_id: str, by: str) -> RunRecord:
        """Stop a queued or running run of this host; its record as it is now."""

    def readiness(self) -> Readiness:
        """Whether plugins are discovered, the store answers and the scheduler loop turns."""
