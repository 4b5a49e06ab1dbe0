"""The @job decorator and the JobContext a handler receives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from plugbox.sdk import (
    JobContext,
    JobLogger,
    LogRecord,
    define_manifest,
    get_job,
    job,
)
from plugbox.sdk import permissions as perms
from plugbox.sdk.context import HttpResponse, Runtime


@job(
    "hello-cron",
    schedule="*/10 * * * * *",
    timezone="Europe/Berlin",
    timeout="10s",
    retries=2,
    retry_delay="2s",
    priority=7,
    tags=["demo"],
    concurrency="replace",
    misfire="catch_up",
    jitter="1500ms",
    run_on_startup=True,
    permissions=perms.presets.plugin_workspace("demo"),
    config={"greeting": "hi"},
)
def hello(ctx: JobContext) -> dict[str, Any]:
    """Says hello.

    More text that is not the description.
    """
    return {"ok": True}


@job("async-one")
async def async_one(ctx: JobContext) -> None:
    await asyncio.sleep(0)


def test_decorator_returns_the_function_unchanged() -> None:
    assert hello(None) == {"ok": True}  # type: ignore[arg-type]
    assert hello.__name__ == "hello"


def test_options_are_normalised_by_the_manifest() -> None:
    manifest = define_manifest(id="demo", version="0.1.0", name="Demo", jobs=[hello, async_one])
    spec = manifest.job("hello-cron")
    assert spec.timeout_ms == 10_000
    assert spec.retry_delay_ms == 2_000
    assert spec.jitter_ms == 1_500
    assert spec.description == "Says hello."
    assert spec.handler.endswith(":hello")
    assert spec.concurrency == "replace"
    assert spec.misfire == "catch_up"
    assert spec.config == {"greeting": "hi"}
    assert spec.tags == ("demo",)
    assert manifest.job("async-one").schedule is None


def test_async_handlers_are_recognised() -> None:
    assert get_job(async_one).is_async
    assert not get_job(hello).is_async


def test_double_decoration_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="already job 'hello-cron'"):
        job("second")(hello)


def test_job_id_must_come_first_as_text() -> None:
    with pytest.raises(TypeError, match=r"@job\('hello-cron'\)"):
        job(hello)  # type: ignore[arg-type]


def test_get_job_on_a_plain_function_says_what_to_do() -> None:
    def plain() -> None: ...

    with pytest.raises(LookupError, match="decorate it with @job"):
        get_job(plain)


def test_declaration_reference_is_importable_form() -> None:
    declaration = get_job(hello)
    module, _, attr = declaration.reference.partition(":")
    assert attr == "hello"
    assert module == hello.__module__


def _context(records: list[LogRecord], events: list[tuple[str, Any]]) -> JobContext:
    return JobContext(
        job_id="hello-cron",
        plugin_id="demo",
        plugin_version="0.1.0",
        run_id="r1",
        scheduled_at=datetime(2025, 1, 1, tzinfo=UTC),
        run_count=3,
        attempt=1,
        trigger="manual",
        workdir="/tmp",
        logger=JobLogger(records.append),
        runtime=Runtime(fs=None, net=None, env=None, shell=None),  # type: ignore[arg-type]
        _emit=lambda name, data: events.append((name, data)),
    )


def test_context_emit_and_logger_reach_their_sinks() -> None:
    records: list[LogRecord] = []
    events: list[tuple[str, Any]] = []
    ctx = _context(records, events)
    ctx.logger.info("said hello", run=3)
    ctx.emit("hello.said", {"run": 3})
    assert records[0].level == "info"
    assert records[0].fields == {"run": 3}
    assert events == [("hello.said", {"run": 3})]
    assert ctx.qualified_job_id == "demo:hello-cron"
    assert ctx.time_left is None


def test_emit_refuses_unserialisable_data_and_bad_names() -> None:
    ctx = _context([], [])
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        ctx.emit("x", {"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="event name"):
        ctx.emit("", None)


def test_http_response_helpers() -> None:
    response = HttpResponse(
        200,
        {"Content-Type": "application/json; charset=latin-1"},
        '{"a": "é"}'.encode("latin-1"),
        "u",
    )
    assert response.json() == {"a": "é"}
    assert response.text == '{"a": "é"}'
    assert response.ok
