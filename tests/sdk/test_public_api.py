"""The author-facing surface: every name PRODUCT.md promises, and nothing removed by accident."""

from __future__ import annotations

import plugbox.sdk
from plugbox.sdk import permissions as perms

CONTRACT = {"job", "define_manifest", "hookimpl", "JobContext", "PermissionDenied", "permissions"}

EXPORTED = {
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
}


def test_contract_names_are_exported() -> None:
    assert set(plugbox.sdk.__all__) >= CONTRACT


def test_all_is_exactly_the_pinned_surface() -> None:
    assert set(plugbox.sdk.__all__) == EXPORTED


def test_every_exported_name_exists() -> None:
    for name in plugbox.sdk.__all__:
        assert hasattr(plugbox.sdk, name), name


def test_permission_surface() -> None:
    assert {"Permissions", "Quotas", "combine", "presets", "decide"} <= set(perms.__all__)
    for preset in ("plugin_workspace", "llm_api", "vector_db"):
        assert callable(getattr(perms.presets, preset))


def test_permission_denied_is_a_permission_error() -> None:
    assert issubclass(plugbox.sdk.PermissionDenied, PermissionError)
    assert issubclass(plugbox.sdk.ManifestError, ValueError)


def test_plugbox_is_a_namespace_package() -> None:
    import plugbox

    assert getattr(plugbox, "__file__", None) is None
