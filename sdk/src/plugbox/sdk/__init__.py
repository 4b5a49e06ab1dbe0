"""plugbox.sdk — what a plugin author imports.

Everything public is re-exported here, one name per line; ``tests/sdk/test_public_api.py`` pins
this list so a removal or rename is a deliberate, reviewed change.
"""

from plugbox.sdk import permissions
from plugbox.sdk._version import __version__
from plugbox.sdk.context import (
    EnvRuntime,
    FileStat,
    FsRuntime,
    HttpResponse,
    JobContext,
    JobLogger,
    LogRecord,
    NetRuntime,
    ResourceUsage,
    Runtime,
    Secrets,
    ShellResult,
    ShellRuntime,
    Trigger,
)
from plugbox.sdk.durations import parse_duration_ms
from plugbox.sdk.errors import (
    DurationError,
    ManifestError,
    NotConfiguredError,
    PatternError,
    PermissionDenied,
    PlugboxError,
    Problem,
    ScheduleError,
    TargetError,
)
from plugbox.sdk.hooks import ENTRY_POINT_GROUP, hookimpl, hookspec, new_plugin_manager
from plugbox.sdk.jobs import JobDeclaration, define_manifest, get_job, job
from plugbox.sdk.manifest import JobSpec, Manifest, validate_manifest
from plugbox.sdk.schedules import Schedule, next_fire_times, parse_schedule

__all__ = [
    "ENTRY_POINT_GROUP",
    "DurationError",
    "EnvRuntime",
    "FileStat",
    "FsRuntime",
    "HttpResponse",
    "JobContext",
    "JobDeclaration",
    "JobLogger",
    "JobSpec",
    "LogRecord",
    "Manifest",
    "ManifestError",
    "NetRuntime",
    "NotConfiguredError",
    "PatternError",
    "PermissionDenied",
    "PlugboxError",
    "Problem",
    "ResourceUsage",
    "Runtime",
    "Schedule",
    "ScheduleError",
    "Secrets",
    "ShellResult",
    "ShellRuntime",
    "TargetError",
    "Trigger",
    "__version__",
    "define_manifest",
    "get_job",
    "hookimpl",
    "hookspec",
    "job",
    "new_plugin_manager",
    "next_fire_times",
    "parse_duration_ms",
    "parse_schedule",
    "permissions",
    "validate_manifest",
]
