"""The parent's side of one live run: its limits, output, log, events, result and kill reason.

:class:`RunWatch` is bookkeeping only — it never touches a process; the watch loop
(:mod:`plugbox.sandbox.run_loop`) reads the child's frames and output into it and asks it for the
:class:`Outcome` at the end.

Everything here comes from plugin code, so everything is bounded as it arrives (limits in
:mod:`plugbox.sandbox.outcome`): what is over a per-entry or total limit is dropped and the
matching ``*_truncated`` flag set; a result over its limit fails the run saying so; a frame that
breaks the protocol (see :meth:`RunWatch.violate`) fails the run as ``ProtocolViolation``. A
record is complete whatever the child sent.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

from plugbox.sandbox.accesses import RecordingDecider, merge_accesses, parse_accesses
from plugbox.sandbox.outcome import (
    MAX_ACCESS_CHARS,
    MAX_ACCESSES,
    MAX_ACCESSES_BYTES,
    MAX_ERROR_TYPE_CHARS,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    MAX_EVENTS_BYTES,
    MAX_LOG_BYTES,
    MAX_LOG_ENTRIES,
    MAX_LOG_FIELDS_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_RESULT_BYTES,
    MAX_TRACEBACK_CHARS,
    Access,
    Enforcement,
    ErrorInfo,
    Event,
    KillReason,
    LogEntry,
    Outcome,
    Status,
    clip,
    result_too_large,
)
from plugbox.sandbox.zygote_client import ZYGOTE_DIED
from plugbox.sdk.permissions import Quotas

#: Output past the quota is drained and dropped; past this multiple of it the run is killed.
OUTPUT_KILL_FACTOR = 4
#: Log lines, events and requests a run may send in all, kept or not; past it the run is killed
#: (decoding what is then dropped would only burn the host's CPU).
MAX_CONTROL_BYTES = 64 * 1024 * 1024
_LEVELS = frozenset({"debug", "info", "warning", "error"})


class RunWatch:
    """The parent's bookkeeping for one run: limits, output, log, events, result, kill reason."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self.deadline = quotas.timeout_ms / 1000 if quotas.timeout_ms else None
        self.output = bytearray()
        self.output_total = 0
        self.log: list[LogEntry] = []
        self.events: list[Event] = []
        self.log_truncated = False
        self.events_truncated = False
        self._log_bytes = 0
        self._event_bytes = 0
        self.result: dict[str, Any] | None = None
        self.violation: str | None = None
        self.kill_reason: KillReason | None = None
        self.kill_detail: str | None = None
        self.peak_memory_mb = 0.0
        self.cpu_ms = 0

    @property
    def over(self) -> bool:
        """Whether the run is decided: it answered, broke the protocol, or must be killed."""
        return self.result is not None or self.violation is not None or self.kill_reason is not None

    def time_left(self, start: float) -> float | None:
        return None if self.deadline is None else start + self.deadline - time.monotonic()

    def kill(self, reason: KillReason, detail: str | None = None) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
            self.kill_detail = detail

    def violate(self, what: str) -> None:
        """The child broke the control protocol: the run ends now, failed, saying ``what``."""
        if self.violation is None and self.kill_reason is None:
            self.violation = what

    def observe(self, rss_mb: float, cpu_ms: int, processes: int) -> None:
        self.peak_memory_mb = max(self.peak_memory_mb, rss_mb)
        self.cpu_ms = max(self.cpu_ms, cpu_ms)
        q = self.quotas
        if q.memory_mb and rss_mb > q.memory_mb:
            self.kill("memory")
        elif q.cpu_ms and cpu_ms > q.cpu_ms:
            self.kill("cpu")
        elif q.processes and processes > q.processes:
            self.kill("processes")

    def received(self, total: int) -> None:
        """``total`` bytes came over the control channel so far."""
        if total > MAX_CONTROL_BYTES:
            self.kill(
                "output",
                f"the run sent more than {MAX_CONTROL_BYTES} bytes of log lines, events and "
                "requests and was killed",
            )

    # -- output ---------------------------------------------------------------------------------
    def read_output(self, fd: int) -> bool:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self._keep_output(chunk)
        return True

    def _keep_output(self, chunk: bytes) -> None:
        self.output_total += len(chunk)
        cap = self.quotas.output_bytes or 0
        room = cap - len(self.output)
        if room > 0:
            self.output.extend(chunk[:room])
        if cap and self.output_total > cap * OUTPUT_KILL_FACTOR:
            self.kill("output")

    def drain_rest(self, fd: int) -> None:
        """Read what is already in the pipe; never wait for writers that may still hold it."""
        os.set_blocking(fd, False)
        for _ in range(64):
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self._keep_output(chunk)

    # -- frames ---------------------------------------------------------------------------------
    def add_log(self, message: dict[str, Any], size: int) -> None:
        """One log frame of ``size`` bytes: kept if it fits, its fields dropped if they do not."""
        if len(self.log) >= MAX_LOG_ENTRIES:
            self.log_truncated = True
            return
        text = clip(str(message.get("message", "")), MAX_MESSAGE_CHARS)
        fields = message.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        weight = size
        if size > MAX_LOG_FIELDS_BYTES and _json_size(fields) > MAX_LOG_FIELDS_BYTES:
            fields, weight = {}, len(text)
            self.log_truncated = True
        if self._log_bytes + weight > MAX_LOG_BYTES:
            self.log_truncated = True
            return
        level = str(message.get("level"))
        at = message.get("at")
        self._log_bytes += weight
        self.log.append(
            LogEntry(
                level=level if level in _LEVELS else "info",
                message=text,
                fields=fields,
                at=float(at) if isinstance(at, int | float) else time.time(),
            )
        )

    def add_event(self, message: dict[str, Any], size: int) -> None:
        """One event frame of ``size`` bytes: kept if it and the run's events fit their limits."""
        if (
            len(self.events) >= MAX_EVENTS
            or (size > MAX_EVENT_BYTES and _json_size(message.get("data")) > MAX_EVENT_BYTES)
            or self._event_bytes + size > MAX_EVENTS_BYTES
        ):
            self.events_truncated = True
            return
        self._event_bytes += size
        name = str(message.get("name"))[:MAX_NAME_CHARS]
        self.events.append(Event(name=name, data=message.get("data"), at=time.time()))

    def set_result(self, message: dict[str, Any], size: int) -> None:
        """The child's last frame; a result over its limit becomes the run's error."""
        if size > MAX_RESULT_BYTES:
            measured = _json_size(message.get("result"))
            if measured > MAX_RESULT_BYTES:
                message = {**message, "result": None, "error": result_too_large(measured)}
        self.result = message

    # -- the end --------------------------------------------------------------------------------
    def outcome(
        self,
        started: datetime,
        start: float,
        exit_message: dict[str, Any],
        peak_memory_mb: float,
        cpu_ms: int,
        enforcement: Enforcement,
        broker_record: RecordingDecider,
    ) -> Outcome:
        status, error = self._verdict(exit_message)
        reported = self.result or {}
        own, cut = _reported_accesses(reported.get("accesses"))
        accesses, merged_cut = merge_accesses(own, broker_record.accesses())
        maxrss_mb = float(exit_message.get("maxrss_kb") or 0) / 1024
        cap = self.quotas.output_bytes or 0
        return Outcome(
            status=status,
            result=reported.get("result") if status == "success" else None,
            error=error,
            kill_reason=self.kill_reason if status in ("timeout", "killed") else None,
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_ms=int((time.monotonic() - start) * 1000),
            cpu_ms=max(cpu_ms, int(exit_message.get("cpu_ms") or 0)),
            peak_memory_mb=round(max(peak_memory_mb, maxrss_mb), 1),
            log=tuple(self.log),
            log_truncated=self.log_truncated,
            events=tuple(self.events),
            events_truncated=self.events_truncated,
            output=self.output.decode("utf-8", "replace"),
            output_truncated=bool(cap) and self.output_total > cap,
            accesses=accesses,
            accesses_truncated=cut
            or merged_cut
            or broker_record.truncated
            or reported.get("accesses_truncated") is True,
            enforcement=enforcement,
        )

    def _verdict(self, exit_message: dict[str, Any]) -> tuple[Status, ErrorInfo | None]:
        if self.kill_reason == "timeout":
            limit = self.quotas.timeout_ms
            return "timeout", ErrorInfo(
                type="Timeout", message=f"the run exceeded its {limit} ms timeout and was killed"
            )
        if self.kill_reason is not None:
            text = self.kill_detail or kill_message(self.kill_reason, self.quotas)
            return "killed", ErrorInfo(type="Killed", message=text)
        if self.violation is not None:
            return "failed", ErrorInfo(
                type="ProtocolViolation",
                message=f"the job's process broke the control protocol and was stopped: "
                f"{self.violation}",
            )
        if self.result is not None:
            raw = self.result.get("error")
            if raw:
                return "failed", _error_info(raw)
            return "success", None
        if exit_message.get("type") == ZYGOTE_DIED:
            return "failed", ErrorInfo(
                type="SandboxDied",
                message="the sandbox process that started this run (plugbox-zygote) died while"
                " the job ran, and the job's process with it; the host starts a new one for the"
                " next run",
            )
        status = int(exit_message.get("status") or 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and self._cpu_spent()):
                self.kill_reason = "cpu"
                return "killed", ErrorInfo(type="Killed", message=kill_message("cpu", self.quotas))
            name = (
                signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            )
            return "failed", ErrorInfo(
                type="Crashed", message=f"the job's process was killed by {name}"
            )
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        return "failed", ErrorInfo(
            type="ExitedWithoutResult",
            message=f"the job's process exited with status {code} before returning a result",
        )

    def _cpu_spent(self) -> bool:
        return bool(self.quotas.cpu_ms) and self.cpu_ms >= (self.quotas.cpu_ms or 0) * 0.9


def _error_info(raw: Any) -> ErrorInfo:
    """The job's error as reported, each part cut to its limit (flagged when cut)."""
    if isinstance(raw, ErrorInfo):
        return raw
    if not isinstance(raw, dict):
        raw = {"type": "Error", "message": str(raw)}
    kind = str(raw.get("type") or "Error")
    message = str(raw.get("message") or "")
    trace = str(raw.get("traceback") or "")
    return ErrorInfo(
        type=kind[:MAX_ERROR_TYPE_CHARS],
        message=clip(message, MAX_MESSAGE_CHARS),
        traceback=clip(trace, MAX_TRACEBACK_CHARS),
        truncated=raw.get("truncated") is True
        or len(kind) > MAX_ERROR_TYPE_CHARS
        or len(message) > MAX_MESSAGE_CHARS
        or len(trace) > MAX_TRACEBACK_CHARS,
    )


def _reported_accesses(raw: Any) -> tuple[tuple[Access, ...], bool]:
    """The child's access list within its count, per-entry and total limits (and whether cut)."""
    if not isinstance(raw, list):
        return (), raw is not None
    kept: list[Any] = []
    total = 0
    cut = len(raw) > MAX_ACCESSES
    for item in raw[:MAX_ACCESSES]:
        size = sum(len(str(v)) for v in item.values()) if isinstance(item, dict) else 0
        if size > MAX_ACCESS_CHARS or total + size > MAX_ACCESSES_BYTES:
            cut = True
            continue
        total += size
        kept.append(item)
    parsed = parse_accesses(kept)
    return parsed, cut or len(parsed) < len(kept)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def kill_message(reason: KillReason, quotas: Quotas) -> str:
    limits = {
        "timeout": f"{quotas.timeout_ms} ms timeout",
        "cpu": f"{quotas.cpu_ms} ms CPU quota",
        "memory": f"{quotas.memory_mb} MB memory quota",
        "output": f"{quotas.output_bytes}-byte output quota (x{OUTPUT_KILL_FACTOR})",
        "processes": f"{quotas.processes}-process quota",
        "cancelled": "",
    }
    if reason == "cancelled":
        return "the run was cancelled (host shutdown, or a newer run replaced it) and was killed"
    return f"the run exceeded its {limits[reason]} and was killed"
