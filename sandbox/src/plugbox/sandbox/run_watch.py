"""The parent's side of one live run: its limits, output, log, events, result and kill reason,
and the relay of the child's network requests to the broker.

:class:`RunWatch` is bookkeeping only — it never touches a process; :mod:`plugbox.sandbox.runner`
reads the child's messages and output into it and asks it for the :class:`Outcome` at the end.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

from plugbox.sandbox.accesses import RecordingDecider, merge_accesses, parse_accesses
from plugbox.sandbox.broker import NetBroker
from plugbox.sandbox.net_request import NetRequest
from plugbox.sandbox.outcome import (
    MAX_EVENTS,
    MAX_LOG_ENTRIES,
    MAX_MESSAGE_CHARS,
    Enforcement,
    ErrorInfo,
    Event,
    KillReason,
    LogEntry,
    Outcome,
    Status,
    clip,
)
from plugbox.sdk import PermissionDenied
from plugbox.sdk.permissions import Quotas

log = logging.getLogger(__name__)

#: Output past the quota is drained and dropped; past this multiple of it the run is killed.
OUTPUT_KILL_FACTOR = 4


def relay_net_request(
    broker: NetBroker, message: dict[str, Any], time_left: float | None
) -> dict[str, Any]:
    try:
        body = base64.b64decode(message["body"]) if message.get("body") is not None else None
        timeout = float(message.get("timeout") or 30.0)
        if time_left is not None:
            timeout = max(0.1, min(timeout, time_left))
        response = broker.perform(
            NetRequest(
                str(message["method"]),
                str(message["url"]),
                dict(message.get("headers") or {}),
                body,
                timeout,
            )
        )
    except PermissionDenied as denied:
        return {
            "error": {
                "type": "PermissionDenied",
                "operation": denied.operation,
                "target": denied.target,
                "rule": denied.rule,
                "reason": denied.reason,
            }
        }
    except Exception as exc:
        # The child raises an OSError with this message: name the kind only when it says more.
        kind = type(exc).__name__
        text = str(exc) if type(exc) is OSError else f"{kind}: {exc}"
        return {"error": {"type": kind, "message": text}}
    return {
        "status": response.status,
        "headers": dict(response.headers),
        "body": base64.b64encode(response.content).decode(),
        "url": response.url,
    }


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
        self.result: dict[str, Any] | None = None
        self.kill_reason: KillReason | None = None
        self.peak_memory_mb = 0.0
        self.cpu_ms = 0

    def time_left(self, start: float) -> float | None:
        return None if self.deadline is None else start + self.deadline - time.monotonic()

    def kill(self, reason: KillReason) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason

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

    def add_log(self, message: dict[str, Any]) -> None:
        if len(self.log) >= MAX_LOG_ENTRIES:
            self.log_truncated = True
            return
        try:
            self.log.append(
                LogEntry(
                    level=str(message.get("level", "info"))[:16],
                    message=clip(str(message.get("message", "")), MAX_MESSAGE_CHARS),
                    fields=dict(message.get("fields") or {}),
                    at=float(message.get("at") or time.time()),
                )
            )
        except (ValueError, TypeError):
            self.log_truncated = True

    def add_event(self, message: dict[str, Any]) -> None:
        if len(self.events) >= MAX_EVENTS:
            self.events_truncated = True
            return
        try:
            self.events.append(
                Event(name=str(message.get("name"))[:200], data=message.get("data"), at=time.time())
            )
        except (ValueError, TypeError):
            self.events_truncated = True

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
        accesses, cut = merge_accesses(
            parse_accesses(reported.get("accesses")), broker_record.accesses()
        )
        maxrss_mb = float(exit_message.get("maxrss_kb") or 0) / 1024
        cap = self.quotas.output_bytes or 0
        return Outcome(
            status=status,
            result=self.result.get("result") if self.result and status == "success" else None,
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
            or broker_record.truncated
            or bool(reported.get("accesses_truncated")),
            enforcement=enforcement,
        )

    def _verdict(self, exit_message: dict[str, Any]) -> tuple[Status, ErrorInfo | None]:
        if self.kill_reason == "timeout":
            limit = self.quotas.timeout_ms
            return "timeout", ErrorInfo(
                type="Timeout", message=f"the run exceeded its {limit} ms timeout and was killed"
            )
        if self.kill_reason is not None:
            return "killed", ErrorInfo(
                type="Killed", message=kill_message(self.kill_reason, self.quotas)
            )
        if self.result is not None:
            raw = self.result.get("error")
            if raw:
                try:
                    return "failed", ErrorInfo.model_validate(raw)
                except ValueError:
                    return "failed", ErrorInfo(
                        type="Error", message=clip(str(raw), MAX_MESSAGE_CHARS)
                    )
            return "success", None
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
