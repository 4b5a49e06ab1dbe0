"""The example plugin as the host will see it: an entry point whose hook returns a valid manifest,
and jobs that may do exactly what they declare."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import entry_points

from plugbox.sdk import (
    ENTRY_POINT_GROUP,
    Manifest,
    new_plugin_manager,
    next_fire_times,
    validate_manifest,
)
from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import assert_allowed, assert_denied
from plugbox_example.jobs import hello, rate_limit


def load_example() -> Manifest:
    (entry,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "example"]
    manager = new_plugin_manager()
    manager.register(entry.load(), name=entry.name)
    (manifest,) = manager.hook.plugbox_manifest()
    assert isinstance(manifest, Manifest)
    return manifest


def test_entry_point_yields_a_valid_manifest() -> None:
    manifest = load_example()
    assert manifest.id == "example"
    assert [job.id for job in manifest.jobs] == ["hello-cron", "cleanup", "rate-limit"]
    # The host validates again from JSON; the round trip must not change anything.
    assert validate_manifest(manifest.model_dump(mode="json")) == manifest


def test_hello_cron_is_the_seed_job() -> None:
    hello_spec = load_example().job("hello-cron")
    assert hello_spec.schedule == "*/5 * * * *"
    assert hello_spec.timeout_ms == 10_000
    assert hello_spec.retries == 2
    assert hello_spec.permissions.quotas == perms.Quotas(
        timeout_ms=10_000, memory_mb=64, cpu_ms=5_000
    )
    fires = next_fire_times(hello_spec.schedule, datetime(2025, 1, 1, 0, 1, tzinfo=UTC), n=3)
    assert [f.minute for f in fires] == [5, 10, 15]


def test_each_job_may_do_exactly_what_it_says() -> None:
    manifest = load_example()
    assert_allowed(hello, "fs.write", ".plugbox/example/cron.log", manifest=manifest)
    assert_denied(hello, "fs.write", ".plugbox/other/cron.log", manifest=manifest)
    assert_denied(hello, "net.connect", "api.github.com:443", manifest=manifest)
    assert_allowed(rate_limit, "net.connect", "api.github.com:443", manifest=manifest)
    assert_denied(rate_limit, "net.connect", "api.github.com:80", manifest=manifest)
    assert_allowed(rate_limit, "env.read", "GITHUB_TOKEN", manifest=manifest)
    assert_denied(rate_limit, "env.read", "AWS_SECRET_ACCESS_KEY", manifest=manifest)
