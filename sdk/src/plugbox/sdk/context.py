"""What a job handler receives: :class:`JobContext` and the runtime interfaces behind it.

The SDK defines the *shape* of the runtime (``fs``, ``net``, ``env``, ``shell``) as protocols; the
sandbox provides the checked implementations and the test harness provides in-memory ones. A job
written against these protocols runs unchanged in both, which is what lets authors test without a
host.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from plugbox.sdk.fencing import FencingToken

Trigger = Literal["schedule", "manual", "startup", "retry"]
LogLevel = Literal["debug", "info", "warning", "error"]

#: Longest event name accepted by ``ctx.emit`` (names are stored and indexed).
MAX_EVENT_NAME = 200


@dataclass(frozen=True, slots=True)
class FileStat:
    """What ``runtime.fs.stat`` reports; times are POSIX seconds."""

    size: int
    modified: float
    is_dir: bool
    is_file: bool


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response from ``runtime.net``; the body is fully read (and bounded) by the runtime."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers), errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


def _charset(headers: Mapping[str, str]) -> str:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


@dataclass(frozen=True, slots=True)
class ShellResult:
    """What ``runtime.shell.run`` returns; output is captured, decoded and bounded."""

    returncode: int
    stdout: str
    stderr: str
    #: True when stdout or stderr was cut at the limit (the command still ran to the end).
    truncated: bool = False


class FsRuntime(Protocol):
    """Files relative to the workspace root; every call is checked against ``fs`` rules."""

    def read_text(self, path: str, encoding: str = "utf-8") -> str: ...
    def read_bytes(self, path: str) -> bytes: ...
    def write_text(self, path: str, data: str, encoding: str = "utf-8") -> None: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def append_text(self, path: str, data: str, encoding: str = "utf-8") -> None: ...
    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None: ...
    def listdir(self, path: str = ".") -> list[str]: ...
    def stat(self, path: str) -> FileStat: ...
    def exists(self, path: str) -> bool: ...
    def remove(self, path: str) -> None: ...
    def rename(self, source: str, destination: str) -> None: ...


class NetRuntime(Protocol):
    """HTTP(S) to allowed hosts; every hop of a redirect is checked again."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | str | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> HttpResponse: ...
    def get(self, url: str, **kwargs: Any) -> HttpResponse: ...
    def post(self, url: str, **kwargs: Any) -> HttpResponse: ...


class EnvRuntime(Protocol):
    """Environment variables named in ``env.allow``; others do not exist for the job."""

    def get(self, name: str, default: str | None = None) -> str | None: ...
    def names(self) -> list[str]: ...


class ShellRuntime(Protocol):
    """Allowed commands, split into arguments and never handed to a shell."""

    def run(
        self, command: str | Sequence[str], *, timeout: float | None = None, cwd: str | None = None
    ) -> ShellResult: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """The four checked proxies a job uses instead of ``open``, sockets, ``os.environ`` or ``subprocess``."""

    fs: FsRuntime
    net: NetRuntime
    env: EnvRuntime
    shell: ShellRuntime


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """Resources the run has used so far, as the runtime measured them."""

    wall_ms: int
    cpu_ms: int
    peak_memory_mb: float


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One structured log line from a job."""

    level: LogLevel
    message: str
    fields: Mapping[str, Any]
    at: float


class JobLogger:
    """A structured logger: ``ctx.logger.info("synced", items=3)``; records go to the run's log."""

    __slots__ = ("_sink",)

    def __init__(self, sink: Callable[[LogRecord], None]) -> None:
        self._sink = sink

    def log(self, level: LogLevel, message: str, **fields: Any) -> None:
        self._sink(LogRecord(level, str(message), fields, time.time()))

    def debug(self, message: str, **fields: Any) -> None:
        self.log("debug", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log("info", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log("warning", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.log("error", message, **fields)


class Secrets:
    """``ctx.secrets``: the values the operator provides for the secrets the manifest declares.

    A value reaches the job only through :meth:`get` — never through the environment or a file
    in the workspace — and the host redacts every value from everything it records about the
    run. Asking for a name the manifest does not declare raises ``PermissionDenied``.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def get(self, name: str) -> str:
        """The value of secret ``name``; ``PermissionDenied`` when the manifest does not declare it.

        A declared secret always has a value here: the host does not start a run whose
        secrets the operator has not provided.
        """
        try:
            return self._values[name]
        except (KeyError, TypeError):
            from plugbox.sdk.errors import PermissionDenied

            declared = ", ".join(sorted(self._values)) or "none"
            raise PermissionDenied(
                "secrets.get",
                str(name),
                "secrets",
                f"the manifest does not declare it (declared: {declared}); add it to"
                " secrets=[...] of @job or define_manifest",
            ) from None

    def names(self) -> list[str]:
        """The declared secret names (never the values)."""
        return sorted(self._values)

    def __repr__(self) -> str:
        return f"Secrets({self.names()!r})"


def _no_usage() -> ResourceUsage:
    return ResourceUsage(0, 0, 0.0)


@dataclass(slots=True)
class JobContext:
    """Everything a handler may use about its run. Built by the runner, never by plugin code."""

    job_id: str
    plugin_id: str
    plugin_version: str
    run_id: str
    scheduled_at: datetime
    run_count: int
    attempt: int
    trigger: Trigger
    workdir: str
    logger: JobLogger
    runtime: Runtime
    config: Mapping[str, Any] = field(default_factory=dict)
    secrets: Secrets = field(default_factory=Secrets, repr=False)
    deadline: float | None = None
    """``time.monotonic()`` value at which the run is killed; ``None`` when unbounded."""
    lease_epoch: int = 0
    """How many times the host leased this fire's run (0 outside ``plugbox serve``)."""
    _emit: Callable[[str, Any], None] = field(default=lambda _event, _data: None, repr=False)
    _usage: Callable[[], ResourceUsage] = field(default=_no_usage, repr=False)

    @property
    def qualified_job_id(self) -> str:
        """``PLUGIN:JOB``, the form the CLI and the API use."""
        return f"{self.plugin_id}:{self.job_id}"

    @property
    def fencing_token(self) -> FencingToken:
        """(job, fire instant, attempt, lease epoch): hand ``str()`` of it to systems the job
        writes to, so they can refuse a replica that lost this run (docs/runtime.md)."""
        return FencingToken(
            job=self.qualified_job_id,
            scheduled_at=self.scheduled_at,
            attempt=self.attempt,
            epoch=self.lease_epoch,
        )

    @property
    def time_left(self) -> float | None:
        """Seconds before the run's timeout, or ``None`` when the run has no timeout."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def usage(self) -> ResourceUsage:
        """CPU, memory and wall time used so far by this run's process tree."""
        return self._usage()

    def emit(self, event: str, data: Any = None) -> None:
        """Record a named event with JSON-serialisable data on this run."""
        if not isinstance(event, str) or not event or len(event) > MAX_EVENT_NAME:
            raise ValueError(
                f"event name must be 1-{MAX_EVENT_NAME} characters of text, got {event!r}"
            )
        try:
            json.dumps(data)
        except (TypeError, ValueError) as err:
            raise TypeError(f"data of event {event!r} is not JSON-serialisable: {err}") from None
        self._emit(event, data)
