"""A manual run asked for outside the schedule: recorded ``queued`` for whichever replica claims it.

The HTTP API (``POST /jobs/{id}/trigger``) and ``plugbox jobs trigger`` share this: the run waits
in the store like a scheduled fire, any ``plugbox serve`` replica with an idle worker starts it,
and the job's concurrency policy is applied then (ADR 0020).
"""

from __future__ import annotations

from plugbox.host.execute import new_run_id
from plugbox.host.operations import JobDisabledError, JobPausedError
from plugbox.host.services import Host
from plugbox.host.store import RunRecord


def queue_manual_run(host: Host, job: str, requested_by: str | None) -> RunRecord:
    """Record a ``queued`` manual run of ``job`` and wake the replicas; the stored record.

    :class:`JobDisabledError` or :class:`JobPausedError` when the job may not run now.
    """
    plugin, spec = host.job(job)
    override = host.config.job_override(plugin.manifest.id, spec.id)
    enabled = spec.enabled if override is None or override.enabled is None else override.enabled
    if not enabled:
        raise JobDisabledError(job)
    if job in host.store.paused_jobs():
        raise JobPausedError(job)
    queue = host.fire_queue
    run_id, now = new_run_id(), queue.now()
    record = RunRecord(
        run_id=run_id,
        job=job,
        status="queued",
        trigger="manual",
        scheduled_at=now,
        host_id=host.config.host_id,
        requested_by=requested_by,
    )
    priority = override.priority if override and override.priority is not None else spec.priority
    queue.enqueue(record, key=None, priority=priority, due_at=now)
    queue.notify("queued")
    return record
