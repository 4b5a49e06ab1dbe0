"""Permission rules bound to config: what a value becomes, and what is refused (issue 12)."""

from __future__ import annotations

import pytest

from plugbox.sdk import ManifestError, define_manifest, job
from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions.bindings import host_rule, path_rule, resolve_bindings

BOUND = perms.Permissions(
    net=perms.NetPermissions(allow_hosts=["static.example.com"], allow_hosts_from=["api_url"]),
    fs=(
        perms.FsPermissions(mode="readWrite", allow_from=["out"], deny=["**/*.key"]),
        perms.FsPermissions(mode="read", allow=["docs/"]),
    ),
)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("https://api.internal/v1", "api.internal:443"),
        ("http://api.internal/v1", "api.internal:80"),
        ("https://API.internal:8443", "api.internal:8443"),
        ("http://[::1]:9000/x", "[::1]:9000"),
        ("api.internal:8443", "api.internal:8443"),
        ("10.0.0.5", "10.0.0.5"),
    ],
)
def test_a_url_or_host_becomes_one_host_rule(value: str, rule: str) -> None:
    assert host_rule(value) == rule


@pytest.mark.parametrize(
    "value", ["", "*.example.com", "ftp://x.example.com", "https://", "https://x:port", 5, "a b"]
)
def test_a_value_that_is_not_one_host_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        host_rule(value)


@pytest.mark.parametrize(
    ("value", "rule"),
    [("exports", "/exports/"), ("a/b/", "/a/b/"), ("data[1]*", "/data\\[1\\]\\*/")],
)
def test_a_folder_becomes_one_anchored_folder_rule(value: str, rule: str) -> None:
    assert path_rule(value) == rule


@pytest.mark.parametrize("value", ["", ".", "../x", "/etc", "a/../b", 3])
def test_a_value_that_is_not_a_folder_in_the_workspace_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        path_rule(value)


def test_resolved_rules_are_literal_and_deny_still_wins() -> None:
    resolved = resolve_bindings(BOUND, {"api_url": "https://api.internal:8443/v2", "out": "exp"})
    assert resolved.missing == () and not resolved.invalid
    assert dict(resolved.values) == {
        "net.allow_hosts <- config.api_url": "api.internal:8443",
        "fs[0].allow <- config.out": "/exp/",
    }
    permissions = resolved.permissions
    assert permissions.net.allow_hosts == ("static.example.com", "api.internal:8443")
    assert permissions.net.allow_hosts_from == () and permissions.fs[0].allow_from == ()
    assert perms.decide("net.connect", "api.internal:8443", permissions).allowed
    assert not perms.decide("net.connect", "api.internal:443", permissions).allowed
    assert perms.decide("fs.write", "exp/a.txt", permissions).allowed
    assert not perms.decide("fs.write", "exp/a.key", permissions).allowed  # deny beats allow
    assert not perms.decide("fs.write", "sub/exp/a.txt", permissions).allowed  # anchored
    assert not perms.decide("fs.write", "docs/x", permissions).allowed  # modes stay apart


def test_an_unbound_rule_allows_nothing_and_is_reported_missing() -> None:
    resolved = resolve_bindings(BOUND, {})
    assert resolved.missing == ("api_url", "out")
    assert not perms.decide("net.connect", "api.internal:443", resolved.permissions).allowed
    assert perms.decide("net.connect", "static.example.com:443", resolved.permissions).allowed
    # Before resolution, a bound rule allows nothing either.
    assert not perms.decide("fs.write", "exp/a.txt", BOUND).allowed


def test_a_binding_must_name_a_declared_config_key() -> None:
    @job("fetch", permissions=perms.Permissions(net={"allow_hosts_from": ["api_url"]}))
    def fetch(ctx: object) -> None:
        return None

    with pytest.raises(ManifestError, match="binds config key 'api_url', which job 'fetch'"):
        define_manifest(id="p", version="0.1.0", name="P", jobs=[fetch])


def test_a_grant_cannot_be_bound() -> None:
    problems = perms.lint_permissions(
        perms.Permissions(net={"allow_hosts_from": ["api_url"]}), "grant", grant=True
    )
    assert [p.location for p in problems] == ["grant"]
    assert "a grant cannot bind rules to config" in problems[0].message


def test_combine_keeps_bindings() -> None:
    merged = perms.combine(BOUND, perms.Permissions(net={"allow_hosts_from": ["other"]}))
    assert merged.net.allow_hosts_from == ("api_url", "other")
    assert merged.fs[0].allow_from == ("out",)
