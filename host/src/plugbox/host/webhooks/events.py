"""Which webhook events a finished run raises, and which ``[[webhooks]]`` tables want them.

``run.failed``, ``run.timeout`` and ``run.killed`` follow the run's status one to one (subscribe
to all three for "any failure"). ``run.succeeded`` is every successful run. ``run.recovered`` is a
successful run whose job's previous *concluded* run did not succeed (was failed, timeout, killed
or interrupted) — a retry that succeeds included; runs that never ran the job to an end (skipped,
cancelled) are passed over when looking for the previous one, so they neither raise nor hide a
recovery. Other statuses (skipped, cancelled, interrupted) raise nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase

from plugbox.host.config import WebhookConfig, WebhookEvent
from plugbox.host.store import RunRecord

_BY_STATUS: dict[str, WebhookEvent] = {
    "failed": "run.failed",
    "timeout": "run.timeout",
    "killed": "run.killed",
    "success": "run.succeeded",
}
#: Statuses that ended a run of the job one way or the other (the rest never got to).
CONCLUDED = frozenset({"success", "failed", "timeout", "killed", "interrupted"})
#: How far back to look for the previous concluded run before giving up (no recovery then).
LOOK_BACK = 20


def wants_job(hook: WebhookConfig, job: str) -> bool:
    """Whether ``job`` (``PLUGIN:JOB``) matches one of the hook's ids or globs, case-sensitive."""
    return any(fnmatchcase(job, pattern) for pattern in hook.jobs)


def events_for(
    record: RunRecord, previous: Callable[[RunRecord], RunRecord | None]
) -> list[WebhookEvent]:
    """The events ``record`` raises; ``previous`` finds the job's concluded run before it and is
    only called for a success."""
    event = _BY_STATUS.get(record.status)
    if event is None:
        return []
    if event != "run.succeeded":
        return [event]
    before = previous(record)
    if before is not None and before.status != "success":
        return ["run.succeeded", "run.recovered"]
    return ["run.succeeded"]
