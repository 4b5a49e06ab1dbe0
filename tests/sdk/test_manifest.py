"""Manifest validation: every problem reported at once, each with its location."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plugbox.sdk import (
    JobContext,
    Manifest,
    ManifestError,
    define_manifest,
    job,
    validate_manifest,
)
from plugbox.sdk import permissions as perms


def handler(ctx: JobContext) -> None:
    return None


def base(**jobs_override: Any) -> dict[str, Any]:
    job_data = {"id": "tick", "handler": "pkg.mod:tick", "schedule": "*/5 * * * *"}
    job_data.update(jobs_override)
    return {"id": "demo", "version": "1.0.0", "name": "Demo", "jobs": [job_data]}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        validate_manifest(data)
    return [str(p) for p in caught.value.problems]


def test_valid_manifest_round_trips_through_json() -> None:
    manifest = validate_manifest(base(timeout_ms="10s", retries=2, tags=["a"]))
    again = validate_manifest(json.loads(manifest.model_dump_json()))
    assert again == manifest
    assert manifest.jobs[0].timeout_ms == 10_000


def test_out_of_range_minute_names_field_and_value() -> None:
    assert problems(base(schedule="61 * * * *")) == [
        "jobs[0].schedule: '61 * * * *': minute 61 is outside 0-59"
    ]


def test_every_problem_is_listed_not_just_the_first() -> None:
    data = base(schedule="61 * * * *", timezone="Mars/Olympus", priority=99, colour="red")
    data["version"] = "not a version"
    found = problems(data)
    locations = sorted(p.split(":")[0] for p in found)
    assert locations == [
        "jobs[0].colour",
        "jobs[0].priority",
        "jobs[0].schedule",
        "jobs[0].timezone",
        "version",
    ]
    assert any("unknown key" in p for p in found)
    assert any("Mars/Olympus" in p for p in found)


@pytest.mark.parametrize(
    ("override", "location", "fragment"),
    [
        ({"schedule": "* * *"}, "jobs[0].schedule", "fields"),
        ({"schedule": "@fortnightly"}, "jobs[0].schedule", "@fortnightly"),
        ({"schedule": "${1BAD}"}, "jobs[0].schedule", "NAME"),
        ({"id": "Bad Id"}, "jobs[0].id", "is not an id"),
        ({"handler": "no_colon"}, "jobs[0].handler", "import reference"),
        ({"timeout_ms": "ten"}, "jobs[0].timeout_ms", "write a number of milliseconds"),
        ({"retries": -1}, "jobs[0].retries", "greater than or equal to 0"),
        ({"concurrency": "sometimes"}, "jobs[0].concurrency", "forbid"),
        ({"misfire": "later"}, "jobs[0].misfire", "run_once"),
        ({"permissions": {"fs": {"mode": "write"}}}, "jobs[0].permissions.fs[0].mode", "readWrite"),
        (
            {"permissions": {"fs": {"allow": ["[[:blank:]]"]}}},
            "jobs[0].permissions.fs[0].allow",
            "",
        ),
        ({"permissions": {"nett": {}}}, "jobs[0].permissions.nett", "unknown key"),
        (
            {"permissions": {"net": {"allow_hosts": ["https://x.com"]}}},
            "jobs[0].permissions.net",
            "",
        ),
        ({"permissions": {"env": {"allow": ["A-B"]}}}, "jobs[0].permissions.env.allow", "name"),
        (
            {"permissions": {"quotas": {"memory_mb": 0}}},
            "jobs[0].permissions.quotas.memory_mb",
            "0",
        ),
        ({"config": {"x": {1, 2}}}, "jobs[0].config", ""),
    ],
)
def test_each_bad_field_is_located(override: dict[str, Any], location: str, fragment: str) -> None:
    found = problems(base(**override))
    assert any(p.startswith(location) and fragment in p for p in found), found


def test_missing_required_fields_are_named() -> None:
    found = problems({"jobs": [{"id": "x"}]})
    assert "id: required but missing" in found
    assert "jobs[0].handler: required but missing" in found


def test_env_schedule_is_checked_by_name_only() -> None:
    manifest = validate_manifest(base(schedule="${BACKUP_CRON}"))
    assert manifest.jobs[0].schedule == "${BACKUP_CRON}"


def test_job_id_clash_is_reported_with_both_locations() -> None:
    data = base()
    data["jobs"].append(dict(data["jobs"][0]))
    assert problems(data) == ["jobs[1].id: job id 'tick' is already used by jobs[0]"]


def test_lint_problems_carry_locations() -> None:
    data = base(
        permissions={
            "fs": [{"mode": "read", "allow": [".env"], "deny": ["**/*.env"]}],
            "shell": {"allow": ["git status"]},
            "capabilities": ["teleport"],
        }
    )
    found = problems(data)
    assert any(
        p.startswith("jobs[0].permissions.fs[0].allow[0]: '.env' can never be used") for p in found
    )
    assert any(
        p.startswith("jobs[0].permissions.shell.allow:") and "'shell' capability" in p
        for p in found
    )
    assert any(
        p.startswith("jobs[0].permissions.capabilities[0]: unknown capability 'teleport'")
        for p in found
    )


def test_plugin_level_capability_satisfies_job_shell_allow() -> None:
    data = base(permissions={"shell": {"allow": ["git status"]}})
    data["permissions"] = {"capabilities": ["shell"]}
    manifest = validate_manifest(data)
    declared = manifest.declared_permissions("tick")
    assert perms.decide("shell.run", "git status", declared).allowed


def test_sdk_range_and_version_are_checked() -> None:
    data = base()
    data["sdk"] = ">=banana"
    assert problems(data) == ["sdk: '>=banana' is not a version range such as '>=0.1,<1'"]
    ok = validate_manifest(base())
    assert ok.sdk_compatible()
    assert not validate_manifest({**base(), "sdk": ">=9"}).sdk_compatible()


def test_manifest_error_message_lists_every_line() -> None:
    with pytest.raises(ManifestError) as caught:
        validate_manifest(base(schedule="61 * * * *", priority=99), source="plugin 'demo'")
    text = str(caught.value)
    assert text.startswith("2 problems in plugin 'demo':")
    assert "  - jobs[0].schedule:" in text


def test_job_lookup_names_known_jobs() -> None:
    manifest = validate_manifest(base())
    with pytest.raises(LookupError, match="its jobs: tick"):
        manifest.job("nope")


def test_manifest_is_frozen() -> None:
    manifest = validate_manifest(base())
    with pytest.raises(ValueError, match="frozen"):
        manifest.id = "other"  # type: ignore[misc]


def test_define_manifest_validates_decorated_jobs() -> None:
    @job("a", schedule="61 * * * *")
    def a(ctx: JobContext) -> None: ...

    @job("b", schedule="* * * * *", timezone="Nowhere/Land")
    def b(ctx: JobContext) -> None: ...

    with pytest.raises(ManifestError) as caught:
        define_manifest(id="demo", version="0.1.0", name="Demo", jobs=[a, b])
    found = [str(p) for p in caught.value.problems]
    assert found[0] == "jobs[0].schedule: '61 * * * *': minute 61 is outside 0-59"
    assert found[1].startswith("jobs[1].timezone:")
    assert "plugin 'demo'" in str(caught.value)


def test_define_manifest_rejects_undecorated_functions() -> None:
    with pytest.raises(ManifestError, match=r"jobs\[0\]: .*handler is not a job"):
        define_manifest(id="demo", version="0.1.0", name="Demo", jobs=[handler])


def test_manifest_type_is_exported() -> None:
    assert isinstance(validate_manifest(base()), Manifest)


def test_a_bad_id_says_what_an_id_may_contain() -> None:
    with pytest.raises(ManifestError) as caught:
        validate_manifest({"id": "Acme Notes", "version": "1.0", "name": "x", "jobs": []})
    (problem,) = caught.value.problems
    assert problem.location == "id"
    assert "'Acme Notes' is not an id" in problem.message
    assert "lowercase letters, digits" in problem.message
