"""The in-process debug mode: the job runs in this process, proxies enforced, no OS confinement.

For stepping through a job in a debugger. Every ``ctx.runtime`` call is still decided exactly as
in the sandbox, but nothing stops code that bypasses the proxies, the timeout is not enforced, and
the outcome says so (``enforcement.mode == "debug"``, every capability ``advisory``).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from datetime import UTC, datetime

from plugbox.sandbox.accesses import LearningDecider, RecordingDecider, merge_accesses
from plugbox.sandbox.broker import NetBroker
from plugbox.sandbox.handlers import call_handler, import_handler
from plugbox.sandbox.net_request import Responder
from plugbox.sandbox.outcome import ErrorInfo, Outcome, advisory_enforcement, json_result
from plugbox.sandbox.redact import finish_outcome
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunRequest
from plugbox.sandbox.session import Collector, build_context, error_from
from plugbox.sdk import ResourceUsage
from plugbox.sdk.permissions import effective_policy

DEBUG_ENFORCEMENT = advisory_enforcement(
    "debug",
    "in-process debug mode: every runtime call is checked, but code that bypasses the "
    "proxies is not stopped and no quota is enforced",
)


def run_in_process(request: RunRequest, *, responder: Responder | None = None) -> Outcome:
    """Run one job in this process (debug mode) and return its outcome.

    ``responder`` answers the job's HTTP requests after they pass every check (see
    :class:`~plugbox.sandbox.broker.NetBroker`).
    """
    decider = effective_policy(request.permissions, *request.grants)
    broker_record = RecordingDecider(decider)
    broker = NetBroker(
        LearningDecider(broker_record) if request.learn else broker_record, responder=responder
    )
    quotas = request.quotas(DEFAULT_QUOTAS)
    collector = Collector()
    started = datetime.now(UTC)
    start = time.monotonic()
    cpu_start = time.process_time()

    def usage() -> ResourceUsage:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return ResourceUsage(
            wall_ms=int((time.monotonic() - start) * 1000),
            cpu_ms=int((time.process_time() - cpu_start) * 1000),
            peak_memory_mb=round(peak_kb / 1024, 1),
        )

    ctx, fs, recorder = build_context(
        request,
        decider,
        quotas,
        collector,
        broker.perform,
        usage,
        host_path=os.environ.get("PATH", ""),
    )
    error: ErrorInfo | None
    for entry in reversed(request.python_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        value = call_handler(import_handler(request.handler), ctx)
        result, error = json_result(value)
    except Exception as exc:
        result, error = None, error_from(exc)
    finally:
        fs.close()
    spent = usage()
    accesses, cut = merge_accesses(recorder.accesses(), broker_record.accesses())
    outcome = Outcome(
        status="failed" if error else "success",
        result=result,
        error=error,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_ms=spent.wall_ms,
        cpu_ms=spent.cpu_ms,
        peak_memory_mb=spent.peak_memory_mb,
        log=tuple(collector.log),
        log_truncated=collector.log_truncated,
        events=tuple(collector.events),
        events_truncated=collector.events_truncated,
        accesses=accesses,
        accesses_truncated=cut or recorder.truncated or broker_record.truncated,
        enforcement=DEBUG_ENFORCEMENT,
    )
    return finish_outcome(outcome, request)
