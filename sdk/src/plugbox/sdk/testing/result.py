"""What ``Harness.run`` returns: the run's outcome, with the parts a test asserts on up front."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from plugbox.sdk.testing._sandbox import Access, ErrorInfo, Event, LogEntry, Outcome, RunRequest


class RunError(ErrorInfo):
    """A failed run's error, shown as a traceback (``assert result.ok, result.error`` reads well)."""

    def __repr__(self) -> str:
        return f"{self.type}: {self.message}\n\n{self.traceback}".rstrip()

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class RunResult:
    """One harness run: the sandbox's :class:`Outcome` and the :class:`RunRequest` that made it.

    ``accesses`` lists every distinct runtime call and its verdict with the deciding rule;
    ``denials`` the refused ones, including those the job caught.
    """

    outcome: Outcome
    request: RunRequest

    @property
    def status(self) -> Literal["success", "failed", "timeout", "killed"]:
        return self.outcome.status

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.outcome.status == "success"

    @property
    def result(self) -> JsonValue:
        """What the job returned, as JSON data."""
        return self.outcome.result

    @property
    def error(self) -> RunError | None:
        """Why the run failed: the job's exception with its traceback, or the runner's verdict."""
        error = self.outcome.error
        return None if error is None else RunError(**error.model_dump())

    @property
    def log(self) -> tuple[LogEntry, ...]:
        return self.outcome.log

    @property
    def events(self) -> tuple[Event, ...]:
        return self.outcome.events

    @property
    def accesses(self) -> tuple[Access, ...]:
        return self.outcome.accesses

    @property
    def denials(self) -> tuple[Access, ...]:
        return self.outcome.denials

    @property
    def output(self) -> str:
        """What the job printed to stdout and stderr (sandbox runs only; bounded)."""
        return self.outcome.output

    @property
    def mode(self) -> Literal["sandbox", "debug"]:
        """``debug`` for an in-process run, where only the proxies checked anything."""
        return self.outcome.enforcement.mode
