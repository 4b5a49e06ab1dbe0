"""What a run produces — the data the host records and the harness returns — and its limits.

Everything here is bounded: a job that logs a million lines or returns a gigabyte still yields a
small outcome that says what was cut.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from plugbox.sandbox.protocol import MAX_VALUE_DEPTH, depth_of, has_surrogate_escape
from plugbox.sdk.permissions import Decision

Status = Literal["success", "failed", "timeout", "killed"]
KillReason = Literal["timeout", "cpu", "memory", "output", "processes", "cancelled"]
Level = Literal["kernel", "best-effort", "advisory"]

# The parent applies every limit below to what a child sends (the child is not trusted to);
# the child applies them too, so an honest job gets a clear error instead of a cut record.
MAX_LOG_ENTRIES = 1_000
#: One log line's fields as JSON; larger fields are dropped (the line is kept, flagged).
MAX_LOG_FIELDS_BYTES = 16 * 1024
#: All log lines of a run together (message and fields).
MAX_LOG_BYTES = 1024 * 1024
MAX_EVENTS = 1_000
#: One event's data as JSON; a larger event is dropped, flagged.
MAX_EVENT_BYTES = 64 * 1024
#: All events of a run together.
MAX_EVENTS_BYTES = 1024 * 1024
MAX_RESULT_BYTES = 1024 * 1024
MAX_TRACEBACK_CHARS = 20_000
MAX_MESSAGE_CHARS = 4_000
MAX_ERROR_TYPE_CHARS = 200
MAX_NAME_CHARS = 200
MAX_ACCESSES = 1_000
#: One access's text (operation, target, rule, reason); a larger one is dropped, flagged.
MAX_ACCESS_CHARS = 4 * 1024
#: The whole access list a child reports.
MAX_ACCESSES_BYTES = 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorInfo(_Frozen):
    """Why a run did not succeed, as the job's own exception (or the runner's verdict)."""

    type: str
    message: str
    traceback: str = ""
    truncated: bool = Field(
        False, description="the type, message or traceback was cut at its limit"
    )


class LogEntry(_Frozen):
    level: str
    message: str
    fields: dict[str, JsonValue] = Field(default_factory=dict)
    at: float


class Event(_Frozen):
    name: str
    data: JsonValue = None
    at: float


class Access(_Frozen):
    """One distinct runtime call and how it was decided (``rule`` names the deciding rule).

    ``is_dir`` records that a directory was meant (``mkdir``, ``listdir``), which matters for
    directory-only patterns such as ``build/``.
    """

    operation: str
    target: str
    allowed: bool
    rule: str
    reason: str = ""
    is_dir: bool = False

    @classmethod
    def of(cls, verdict: Decision, *, is_dir: bool = False) -> Access:
        """The record of one decision."""
        return cls(
            operation=verdict.operation,
            target=verdict.target,
            allowed=verdict.allowed,
            rule=verdict.rule,
            reason=verdict.reason,
            is_dir=is_dir,
        )


#: What :attr:`KernelGrants.execute` says when the kernel lets a run execute every system program.
EVERY_SYSTEM_PATH = "every system path"


class KernelGrants(_Frozen):
    """What Landlock really lets a run do in the workspace, beside what its rules declared.

    Landlock grants whole trees, so this can be wider than the rules (``*.json`` to read is the
    whole workspace, ``"."``); ``runtime.fs`` still refuses the rest, but code that bypasses it
    gets all of this. Never wider for writing: the workspace root is never writable.
    """

    read: tuple[str, ...] = Field((), description="workspace-relative trees or files; '.' = all")
    write: tuple[str, ...] = Field((), description="workspace-relative trees (also readable)")
    execute: tuple[str, ...] | Literal["every system path"] = Field(
        (), description="the only files execve may start, or every system path"
    )


class BoundRule(_Frozen):
    """A permission rule bound to an operator's config value, as this run resolved it."""

    rule: str = Field(description="e.g. 'net.allow_hosts <- config.api_url'")
    value: str = Field(description="the literal rule it became, e.g. 'api.internal:8443'")


class Enforcement(_Frozen):
    """Which layer protected each capability of this run, and the Landlock ABI when it was used."""

    mode: Literal["sandbox", "debug"]
    fs: Level
    net: Level
    env: Level
    shell: Level
    cpu: Level
    memory: Level
    processes: Level
    landlock_abi: int | None = None
    notes: tuple[str, ...] = ()
    kernel: KernelGrants | None = Field(None, description="None when Landlock was not applied")
    bindings: tuple[BoundRule, ...] = Field(
        (),
        description="permission rules bound to operator config, and the literal rule each became",
    )

    def with_kernel(self, grants: KernelGrants, notes: tuple[str, ...] = ()) -> Enforcement:
        """This record with what Landlock granted the run: ``shell`` is ``kernel`` only when the
        kernel refuses every program but the ones the rules name."""
        if self.landlock_abi is None:
            return self
        shell = self.shell
        if grants.execute == EVERY_SYSTEM_PATH and shell == "kernel":
            shell = "best-effort"
        return self.model_copy(
            update={"kernel": grants, "shell": shell, "notes": self.notes + notes}
        )


def capability_levels(
    *, landlock: bool, netns: bool, seccomp: bool, cgroup_memory: bool, cgroup_pids: bool
) -> dict[str, Level]:
    """Which kind of layer protects each capability, given the layers that are active.

    The one rule behind every run record's ``enforcement`` and ``plugbox doctor``.
    """
    return {
        "fs": "kernel" if landlock else "advisory",
        "net": "kernel" if netns else "advisory",
        "env": "kernel" if landlock else "best-effort",
        "shell": "kernel" if landlock and seccomp else "best-effort",
        "cpu": "kernel",
        "memory": "kernel" if cgroup_memory else "best-effort",
        "processes": "kernel" if cgroup_pids else "best-effort",
    }


def advisory_enforcement(mode: Literal["sandbox", "debug"], note: str) -> Enforcement:
    """Every capability ``advisory``: only the proxies stood between the job and the machine."""
    return Enforcement(
        mode=mode,
        fs="advisory",
        net="advisory",
        env="advisory",
        shell="advisory",
        cpu="advisory",
        memory="advisory",
        processes="advisory",
        notes=(note,),
    )


class Outcome(_Frozen):
    """The result of one run, bounded in size."""

    status: Status
    result: JsonValue = None
    error: ErrorInfo | None = None
    kill_reason: KillReason | None = None
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    cpu_ms: int = 0
    peak_memory_mb: float = 0.0
    log: tuple[LogEntry, ...] = ()
    log_truncated: bool = False
    events: tuple[Event, ...] = ()
    events_truncated: bool = False
    output: str = ""
    output_truncated: bool = False
    accesses: tuple[Access, ...] = Field(
        (), description="each distinct runtime call and its verdict, as the run reported it"
    )
    accesses_truncated: bool = False
    enforcement: Enforcement

    @property
    def denials(self) -> tuple[Access, ...]:
        """The calls that were refused, each with the rule that refused it."""
        return tuple(a for a in self.accesses if not a.allowed)


def json_result(value: Any) -> tuple[JsonValue, ErrorInfo | None]:
    """A handler's return value as JSON data, or the error explaining why it cannot be one."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    too_deep = ErrorInfo(
        type="ResultTooDeep",
        message=f"the job's result nests deeper than {MAX_VALUE_DEPTH} levels of lists and "
        "dicts; flatten it",
    )
    try:
        text = json.dumps(value, allow_nan=False)
    except RecursionError:
        return None, too_deep
    except (TypeError, ValueError) as err:
        kind = type(value).__name__
        return None, ErrorInfo(
            type="ResultNotSerialisable",
            message=f"the job returned a {kind} that is not JSON-serialisable ({err}); "
            "return a dict, list, str, number, bool, None or a pydantic model",
        )
    if len(text) > MAX_RESULT_BYTES:
        return None, result_too_large(len(text))
    if text.count("[") + text.count("{") > MAX_VALUE_DEPTH and depth_of(value) > MAX_VALUE_DEPTH:
        return None, too_deep
    loaded: JsonValue = json.loads(text)
    if has_surrogate_escape(text):
        try:
            json.dumps(loaded, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return None, ErrorInfo(
                type="ResultNotSerialisable",
                message="the job's result holds a lone UTF-16 surrogate (text that is not "
                "valid Unicode, such as a file name decoded with surrogateescape); "
                "decode such bytes with errors='replace'",
            )
    return loaded, None


def result_too_large(size: int) -> ErrorInfo:
    """The error of a result over :data:`MAX_RESULT_BYTES` (said the same by child and parent)."""
    return ErrorInfo(
        type="ResultTooLarge",
        message=f"the job's result is {size} bytes of JSON; the limit is {MAX_RESULT_BYTES}. "
        "Write large data to the workspace and return its path",
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut]"
