"""The example plugin's jobs, run in the sandbox through the ``plugbox`` fixture as an outside
author would test them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import Harness, assert_denied
from plugbox_example.jobs import cleanup, hello, rate_limit
from plugbox_example.plugin import manifest

RATE_LIMIT_URL = "https://api.github.com/rate_limit"
RATE_LIMIT = {"resources": {"core": {"remaining": 4999, "limit": 5000}}}


def test_hello_appends_to_its_log_and_emits(plugbox: Harness) -> None:
    first = plugbox.run(hello, manifest=manifest, run_count=1, trigger="schedule")
    second = plugbox.run(hello, manifest=manifest, run_count=2, trigger="schedule")
    assert second.status == "success", second.error
    assert (first.result, second.result) == ({"ok": True, "run": 1}, {"ok": True, "run": 2})
    log = plugbox.workspace / ".plugbox/example/cron.log"
    assert log.read_text() == "run 1\nrun 2\n"
    assert [(e.name, e.data) for e in second.events] == [("hello.said", {"run": 2})]
    assert [(e.message, e.fields) for e in second.log] == [("said hello", {"run": 2})]
    # The job's timeout is its run's wall-clock quota.
    assert second.request.permissions.quotas.timeout_ms == 10_000


def test_cleanup_deletes_only_files_older_than_max_age(plugbox: Harness) -> None:
    now = datetime(2025, 6, 10, 3, 0, tzinfo=UTC)
    cache = plugbox.workspace / ".plugbox/example/cache"
    cache.mkdir(parents=True)
    for name, age in (("old.json", timedelta(days=10)), ("fresh.json", timedelta(days=1))):
        (cache / name).write_text("{}")
        stamp = (now - age).timestamp()
        os.utime(cache / name, (stamp, stamp))
    result = plugbox.run(cleanup, manifest=manifest, scheduled_at=now)
    assert result.result == {"deleted": ["old.json"], "kept": 1}, result.error
    assert sorted(p.name for p in cache.iterdir()) == ["fresh.json"]
    assert [(e.name, e.data) for e in result.events] == [
        ("cache.cleaned", {"deleted": ["old.json"]})
    ]
    # config overrides the declared max_age_days
    kept = plugbox.run(cleanup, manifest=manifest, scheduled_at=now, config={"max_age_days": 30})
    assert kept.result == {"deleted": [], "kept": 1}


def test_cleanup_of_a_missing_cache_does_nothing(plugbox: Harness) -> None:
    result = plugbox.run(cleanup, manifest=manifest)
    assert result.result == {"deleted": [], "kept": 0}, result.error


def test_rate_limit_sends_the_token_and_keeps_the_answer(plugbox: Harness) -> None:
    plugbox.http.add("GET", RATE_LIMIT_URL, json=RATE_LIMIT)
    result = plugbox.run(
        rate_limit, manifest=manifest, env={"GITHUB_TOKEN": "ghp_x", "AWS_SECRET_ACCESS_KEY": "k"}
    )
    assert result.result == {"remaining": 4999, "limit": 5000, "authenticated": True}, result.error
    (sent,) = plugbox.http.requests
    assert sent.headers["Authorization"] == "Bearer ghp_x"
    saved = plugbox.workspace / ".plugbox/example/rate_limit.json"
    assert saved.read_text() == '{"resources": {"core": {"remaining": 4999, "limit": 5000}}}'


def test_rate_limit_without_a_token_and_on_an_error_status(plugbox: Harness) -> None:
    plugbox.http.add("GET", RATE_LIMIT_URL, json=RATE_LIMIT)
    anonymous = plugbox.run(rate_limit, manifest=manifest)
    assert anonymous.result["authenticated"] is False, anonymous.error

    plugbox.http.add("GET", RATE_LIMIT_URL, status=403, text="rate limited")
    refused = plugbox.run(rate_limit, manifest=manifest)
    assert refused.status == "failed"
    assert refused.error is not None
    assert refused.error.message == "api.github.com answered 403: rate limited"


def test_an_operator_can_cut_rate_limit_off_the_network(plugbox: Harness) -> None:
    plugbox.http.add("GET", RATE_LIMIT_URL, json=RATE_LIMIT)
    offline = perms.combine(
        perms.presets.plugin_workspace("example"), perms.presets.env_vars("GITHUB_TOKEN")
    )
    result = plugbox.run(rate_limit, manifest=manifest, grants=[offline])
    assert result.status == "failed"
    assert_denied(result, "net.connect", "api.github.com:443", rule="operator grant[0]")
    assert plugbox.http.requests == ()
