"""Every error plugbox raises at a plugin author, and why each exists.

The tree, so a caller can catch as broadly or as narrowly as they need::

    PlugboxError
    ├── PermissionDenied   (also PermissionError)  a runtime call the effective permissions refuse
    ├── ManifestError      (also ValueError)       a manifest, job or permission set that is not valid
    ├── NotConfiguredError      (also LookupError)      a job whose operator settings (config, bindings, secrets) are missing or wrong
    ├── ScheduleError      (also ValueError)       a cron expression, alias or time zone that is not valid
    ├── PatternError       (also ValueError)       an fs glob, host or shell pattern we cannot evaluate exactly
    ├── TargetError        (also ValueError)       a path, host or command a job asked for that is malformed
    └── DurationError      (also ValueError)       "10s"-style durations that do not parse

Each error builds its message from the ids it was given, so the text names what was wrong and where
without the caller formatting anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class PlugboxError(Exception):
    """Base class of every error plugbox raises on purpose."""


class PermissionDenied(PlugboxError, PermissionError):  # noqa: N818 - the contract fixes this name
    """A runtime call (fs, net, env, shell) that the effective permissions do not allow."""

    def __init__(self, operation: str, target: str, rule: str, reason: str = "") -> None:
        self.operation = operation
        self.target = target
        self.rule = rule
        self.reason = reason
        text = f"{operation} {target!r} denied by {rule}"
        if reason:
            text += f": {reason}"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest: where (a dotted path such as ``jobs[0].schedule``) and what."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ManifestError(PlugboxError, ValueError):
    """A manifest is not valid; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem], source: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''}{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class ScheduleError(PlugboxError, ValueError):
    """A schedule expression (cron fields, alias, ``${ENV}``) or time zone that cannot be used."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(f"{expression!r}: {reason}")


class PatternError(PlugboxError, ValueError):
    """A permission pattern (fs glob, net host, shell command) that is malformed or ambiguous.

    Raised instead of guessing: a deny pattern that silently never matches is a security hole.
    """

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"{pattern!r}: {reason}")


class TargetError(PlugboxError, ValueError):
    """A target (workspace path, host, command line) that is malformed before any rule is consulted.

    The decision function turns this into a denial naming the reason (``'..' leaves the workspace``),
    so a job sees ``PermissionDenied``; the parsers raise it so each trick is rejected in one place.
    """

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"{target!r}: {reason}")


class DurationError(PlugboxError, ValueError):
    """A duration such as ``"10s"`` or ``1500`` (milliseconds) that does not parse."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"{value!r}: {reason}")


class NotConfiguredError(PlugboxError, LookupError):
    """A job the host will not run as configured: a binding without an operator value, a secret
    not provided, or operator config its schema refuses. Carries every problem, each naming the
    key to set (``plugins.weather.config.api_url``), so the message says what to do."""

    def __init__(self, job: str, problems: Iterable[Problem]) -> None:
        self.job = job
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = [f"job {job} does not run until these are set:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))
