"""``[[webhooks]]``: where the host reports finished runs, and which ones.

Validated here as values only; the signing secret itself is never in the file — ``secret_env``
names the environment variable holding it, and the notifier reads it when it starts
(:mod:`plugbox.host.webhooks.signing`), so a config file can be shared or committed safely.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugbox.sdk import parse_duration_ms

WebhookEvent = Literal["run.failed", "run.timeout", "run.killed", "run.succeeded", "run.recovered"]

#: Each attempt waits this long for an answer (the whole request: connect, send, read).
DEFAULT_TIMEOUT_MS = 10_000
#: Retries stop once this long has passed since the run finished; the delivery is then ``failed``.
DEFAULT_RETRY_FOR_MS = 3_600_000

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?", re.IGNORECASE)


class WebhookConfig(BaseModel):
    """One ``[[webhooks]]`` table: a receiver, the events it wants, and how to sign for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="http(s) URL the run summary is POSTed to")
    events: tuple[WebhookEvent, ...] = Field(description="which outcomes to send")
    jobs: tuple[str, ...] = Field(
        ("*:*",), description="PLUGIN:JOB ids or fnmatch globs (example:*, *:backup-*)"
    )
    secret_env: str = Field(description="environment variable holding the whsec_ signing secret")
    timeout_ms: int = Field(
        DEFAULT_TIMEOUT_MS, validation_alias="timeout", gt=0, description="per attempt"
    )
    retry_for_ms: int = Field(
        DEFAULT_RETRY_FOR_MS, validation_alias="retry_for", ge=0, description="retry window"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not _URL.fullmatch(value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("events")
    @classmethod
    def _distinct_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(
                "name at least one event: run.failed, run.timeout, run.killed, run.succeeded,"
                " run.recovered"
            )
        return tuple(dict.fromkeys(value))

    @field_validator("jobs")
    @classmethod
    def _job_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one job; leave the key out to mean every job")
        for pattern in value:
            plugin, sep, job = pattern.partition(":")
            if not sep or not plugin or not job:
                raise ValueError(
                    f"{pattern!r} is not PLUGIN:JOB or a glob of it; write e.g. 'example:hello-cron',"
                    " 'example:*' or '*:backup-*'"
                )
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an environment variable name; give the NAME of the variable"
                " that holds the secret (the secret itself never goes in this file)"
            )
        return value

    @field_validator("timeout_ms", "retry_for_ms", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int:
        return parse_duration_ms(value)  # type: ignore[arg-type]


def check_webhooks(webhooks: tuple[WebhookConfig, ...]) -> list[tuple[int, str, str]]:
    """Problems across tables: ``(index, key, message)``. A URL is a webhook's identity in the
    delivery log (a pending delivery finds its signing secret again by it), so it is unique."""
    seen: dict[str, int] = {}
    problems = []
    for index, hook in enumerate(webhooks):
        if hook.url in seen:
            problems.append(
                (index, "url", f"{hook.url!r} is already webhooks[{seen[hook.url]}]; merge them")
            )
        seen.setdefault(hook.url, index)
    return problems
