"""Permission sets and manifests are bounded in size, and the refusal names the limit and where.

The bounds exist because the shared zygote validates and compiles a job's whole permission set
before it forks the job's first run: 1,000 globs of 1 KB each kept it busy for 11 s, stalling
every other plugin's runs. At the bounds it takes about 0.1 s (see the report in issue 9).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from plugbox.sdk import ManifestError, validate_manifest
from plugbox.sdk import permissions as perms
from plugbox.sdk.manifest import MAX_DESCRIPTION_CHARS, MAX_JOBS, MAX_TAGS
from plugbox.sdk.permissions.models import (
    MAX_CAPABILITIES,
    MAX_COMMAND_CHARS,
    MAX_ENV_NAME_CHARS,
    MAX_FS_PATTERN_CHARS,
    MAX_FS_PATTERNS,
    MAX_FS_RULE_SETS,
    MAX_LIST_ENTRIES,
)


def _globs(count: int, length: int = 20) -> list[str]:
    return [f"d{i:04}/" + "x" * (length - 10) + "/*.t" for i in range(count)]


def _manifest(**job: Any) -> dict[str, Any]:
    return {
        "id": "greedy",
        "version": "1.0",
        "name": "Greedy",
        "jobs": [{"id": "tick", "handler": "greedy:tick", **job}],
    }


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        validate_manifest(data, source="plugin greedy")
    assert "plugin greedy" in str(caught.value)
    return [str(problem) for problem in caught.value.problems]


def test_an_honest_set_at_the_bounds_is_accepted() -> None:
    at_limit = perms.Permissions(
        fs=[
            perms.FsPermissions(mode="read", allow=_globs(MAX_FS_PATTERNS // 2)),
            perms.FsPermissions(mode="readWrite", allow=_globs(MAX_FS_PATTERNS // 2)),
        ],
        net=perms.NetPermissions(allow_hosts=[f"h{i}.example.com" for i in range(256)]),
        env=perms.EnvPermissions(allow=[f"VAR_{i}" for i in range(MAX_LIST_ENTRIES)]),
    )
    assert len(at_limit.fs[0].allow) + len(at_limit.fs[1].allow) == MAX_FS_PATTERNS


def test_too_many_fs_patterns_are_refused_with_the_limit_and_the_job() -> None:
    problems = _problems(
        _manifest(permissions={"fs": {"mode": "read", "allow": _globs(MAX_FS_PATTERNS + 1)}})
    )
    assert len(problems) == 1
    assert problems[0].startswith("jobs[0].permissions.fs")
    assert f"{MAX_FS_PATTERNS + 1} " in problems[0] and f"at most {MAX_FS_PATTERNS}" in problems[0]


def test_the_bound_holds_for_the_whole_set_across_rule_sets() -> None:
    half = MAX_FS_PATTERNS // 2 + 1
    with pytest.raises(ValidationError, match=f"at most {MAX_FS_PATTERNS} are allowed"):
        perms.Permissions(
            fs=[
                perms.FsPermissions(allow=_globs(half)),
                perms.FsPermissions(mode="readWrite", allow=_globs(half)),
            ]
        )


def test_plugin_and_job_sets_within_the_bound_alone_are_refused_together() -> None:
    """combine() keeps the bound: the zygote sees plugin-level + job-level patterns at once."""
    data = _manifest(permissions={"fs": {"allow": _globs(200)}})
    data["permissions"] = {"fs": {"allow": [p.replace("d", "e", 1) for p in _globs(200)]}}
    problems = _problems(data)
    assert len(problems) == 1
    assert problems[0].startswith("jobs[0].permissions (combined with plugin permissions).fs")
    assert "400 fs patterns" in problems[0]


def test_the_total_text_of_fs_patterns_is_bounded() -> None:
    long_globs = _globs(MAX_FS_PATTERN_CHARS // 1000 + 1, length=1000)
    with pytest.raises(ValidationError, match=f"at most {MAX_FS_PATTERN_CHARS} are allowed"):
        perms.Permissions(fs={"allow": long_globs})


def test_the_reported_attack_is_refused_quickly() -> None:
    """1,000 globs of 1 KB: refused by counting, before any of them is parsed."""
    import time

    started = time.perf_counter()
    problems = _problems(_manifest(permissions={"fs": {"allow": _globs(1000, length=1000)}}))
    assert time.perf_counter() - started < 1.0
    assert "1000 " in problems[0]


def test_too_many_rule_sets() -> None:
    rules = [{"allow": [f"d{i}/x"]} for i in range(MAX_FS_RULE_SETS + 1)]
    problems = _problems(_manifest(permissions={"fs": rules}))
    assert problems == [
        f"jobs[0].permissions.fs: {MAX_FS_RULE_SETS + 1} fs rule sets; at most"
        f" {MAX_FS_RULE_SETS} are allowed (a permission set is bounded so that preparing one"
        " job's runs cannot stall others)"
    ]


@pytest.mark.parametrize(
    ("field", "value", "location"),
    [
        ("net", {"allow_hosts": ["a.example.com"] * 257}, "net.allow_hosts"),
        ("net", {"deny_hosts": ["a.example.com"] * 257}, "net.deny_hosts"),
        ("env", {"allow": ["NAME"] * 257}, "env.allow"),
        ("shell", {"allow": ["git status"] * 257}, "shell.allow"),
        ("shell", {"deny": ["rm **"] * 257}, "shell.deny"),
        ("capabilities", ["shell"] * (MAX_CAPABILITIES + 1), "capabilities"),
    ],
)
def test_every_list_is_bounded(field: str, value: Any, location: str) -> None:
    problems = _problems({**_manifest(), "permissions": {field: value}})
    assert len(problems) == 1
    assert problems[0].startswith(f"permissions.{location}: ")
    assert "at most" in problems[0]


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("shell", {"allow": ["git status", "echo " + "x" * MAX_COMMAND_CHARS]}, MAX_COMMAND_CHARS),
        ("env", {"allow": ["OK", "A" * (MAX_ENV_NAME_CHARS + 1)]}, MAX_ENV_NAME_CHARS),
    ],
)
def test_a_long_entry_is_refused_with_its_index(field: str, value: Any, limit: int) -> None:
    problems = _problems(_manifest(permissions={field: value}))
    assert len(problems) == 1
    assert f"[1] is {len(value['allow'][1])} characters long; at most {limit}" in problems[0]
    assert problems[0].startswith(f"jobs[0].permissions.{field}.allow")


def test_a_long_glob_is_refused_by_its_own_check() -> None:
    problems = _problems(_manifest(permissions={"fs": {"allow": ["a/" + "x" * 1100]}}))
    assert "bytes long; a pattern may be at most 1024 bytes" in problems[0]


def test_manifest_bounds_name_the_field() -> None:
    data = _manifest(description="x" * (MAX_DESCRIPTION_CHARS + 1), tags=["t"] * (MAX_TAGS + 1))
    data["description"] = "y" * (MAX_DESCRIPTION_CHARS + 1)
    problems = _problems(data)
    assert sorted(p.split(":")[0] for p in problems) == [
        "description",
        "jobs[0].description",
        "jobs[0].tags",
    ]
    too_many = {**_manifest(), "jobs": [{"id": f"j{i}", "handler": "x:y"} for i in range(300)]}
    assert _problems(too_many) == [f"jobs: 300 jobs; a plugin may declare at most {MAX_JOBS}"]


def test_bounded_sets_still_round_trip_as_json() -> None:
    manifest = validate_manifest(_manifest(permissions={"fs": {"allow": _globs(MAX_FS_PATTERNS)}}))
    again = validate_manifest(json.loads(manifest.model_dump_json()))
    assert again == manifest
