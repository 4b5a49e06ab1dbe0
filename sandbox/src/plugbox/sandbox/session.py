"""Building a run's ``JobContext`` and collecting what the job logs and emits, within bounds.

Shared by the in-process debug mode and the confined child, so both hand the handler the same
context and turn what it did into the same :class:`~plugbox.sandbox.outcome.Outcome` fields.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from plugbox.sandbox.accesses import LearningDecider, RecordingDecider
from plugbox.sandbox.outcome import (
    MAX_EVENTS,
    MAX_LOG_ENTRIES,
    MAX_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    ErrorInfo,
    Event,
    LogEntry,
    clip,
)
from plugbox.sandbox.proxies import CheckedEnv, CheckedFs, CheckedNet, CheckedShell
from plugbox.sandbox.proxies.env import allowed_environment
from plugbox.sandbox.proxies.net import Transport
from plugbox.sandbox.request import RunContext, RunRequest
from plugbox.sdk import JobContext, JobLogger, LogRecord, ResourceUsage, Runtime, Secrets
from plugbox.sdk.permissions import Decider, Quotas


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class Collector:
    """Bounded log and event buffers for one run."""

    def __init__(self) -> None:
        self.log: list[LogEntry] = []
        self.events: list[Event] = []
        self.log_truncated = False
        self.events_truncated = False

    def add_log(self, record: LogRecord) -> None:
        if len(self.log) >= MAX_LOG_ENTRIES:
            self.log_truncated = True
            return
        fields = {str(k): _jsonable(v) for k, v in record.fields.items()}
        self.log.append(
            LogEntry(
                level=record.level,
                message=clip(record.message, MAX_MESSAGE_CHARS),
                fields=fields,
                at=record.at,
            )
        )

    def add_event(self, name: str, data: Any) -> None:
        if len(self.events) >= MAX_EVENTS:
            self.events_truncated = True
            return
        self.events.append(Event(name=name, data=data, at=time.time()))


def build_context(
    request: RunRequest,
    decider: Decider,
    quotas: Quotas,
    collector: Collector,
    transport: Transport,
    usage: Callable[[], ResourceUsage],
    *,
    host_path: str,
    context: RunContext | None = None,
    environment: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    exec_roots: tuple[str, ...] | None = None,
) -> tuple[JobContext, CheckedFs, RecordingDecider]:
    """The ``JobContext`` for ``request``, the fs proxy to close, and the record of its calls.

    The proxies decide through a :class:`RecordingDecider`; the run's own setup (which variables
    exist, which names a listing shows) decides through ``decider`` directly, so the record holds
    only calls the job made.
    """
    workspace = request.workspace
    recorder = RecordingDecider(decider)
    calls: Decider = recorder
    if request.learn:
        calls, decider = LearningDecider(recorder), LearningDecider(decider)
    file_bytes = quotas.file_size_mb * 1024 * 1024 if quotas.file_size_mb else None
    fs = CheckedFs(workspace, calls, max_file_bytes=file_bytes, listing_decider=decider)
    source = request.environment if environment is None else environment
    runtime = Runtime(
        fs=fs,
        net=CheckedNet(calls, transport),
        env=CheckedEnv(allowed_environment(source, decider), calls),
        shell=CheckedShell(workspace, calls, host_path=host_path, exec_roots=exec_roots),
    )
    ctx = request.context if context is None else context
    deadline = time.monotonic() + quotas.timeout_ms / 1000 if quotas.timeout_ms else None
    job_context = JobContext(
        job_id=ctx.job_id,
        plugin_id=ctx.plugin_id,
        plugin_version=ctx.plugin_version,
        run_id=ctx.run_id,
        scheduled_at=ctx.scheduled_at,
        run_count=ctx.run_count,
        attempt=ctx.attempt,
        trigger=ctx.trigger,
        workdir=os.path.realpath(workspace),
        logger=JobLogger(collector.add_log),
        runtime=runtime,
        config=dict(ctx.config),
        secrets=Secrets(request.secret_values() if secrets is None else secrets),
        deadline=deadline,
        lease_epoch=ctx.lease_epoch,
        _emit=collector.add_event,
        _usage=usage,
    )
    return job_context, fs, recorder


def error_from(exc: BaseException) -> ErrorInfo:
    """The recorded form of an exception raised by a job."""
    text = "".join(traceback.format_exception(exc))
    return ErrorInfo(
        type=type(exc).__qualname__,
        message=clip(str(exc), MAX_MESSAGE_CHARS),
        traceback=clip(text, MAX_TRACEBACK_CHARS),
    )
