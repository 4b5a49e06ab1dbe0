"""The example plugin as the host will see it: an entry point whose hook returns a valid manifest."""

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
    hello = load_example().job("hello-cron")
    assert hello.schedule == "*/5 * * * *"
    assert hello.timeout_ms == 10_000
    assert hello.retries == 2
    assert hello.permissions.quotas == perms.Quotas(timeout_ms=10_000, memory_mb=64, cpu_ms=5_000)
    fires = next_fire_times(hello.schedule, datetime(2025, 1, 1, 0, 1, tzinfo=UTC), n=3)
    assert [f.minute for f in fires] == [5, 10, 15]


def test_each_job_may_do_exactly_what_it_says() -> None:
    manifest = load_example()
    hello = manifest.declared_permissions("hello-cron")
    assert perms.decide("fs.write", ".plugbox/example/cron.log", hello).allowed
    assert not perms.decide("fs.write", ".plugbox/other/cron.log", hello).allowed
    assert not perms.decide("net.connect", "api.github.com:443", hello).allowed
    rate = manifest.declared_permissions("rate-limit")
    assert perms.decide("net.connect", "api.github.com:443", rate).allowed
    assert not perms.decide("net.connect", "api.github.com:80", rate).allowed
    assert perms.decide("env.read", "GITHUB_TOKEN", rate).allowed
    assert not perms.decide("env.read", "AWS_SECRET_ACCESS_KEY", rate).allowed
