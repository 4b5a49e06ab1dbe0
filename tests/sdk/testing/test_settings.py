"""Config, secrets and bound rules through the harness, as the host applies them (issue 12)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from types import ModuleType

import pytest

from plugbox.sdk import NotConfiguredError
from plugbox.sdk.testing import Harness

from .conftest import imported_jobs

TOKEN = "s3cr3t-Tok/en+value"
URL = "https://api.internal:8443"


@pytest.fixture(scope="module")
def settings_jobs() -> Iterator[ModuleType]:
    yield from imported_jobs("plugbox_settings_jobs")


def run_leaky(plugbox: Harness, jobs: ModuleType, in_process: bool, **config: object):
    plugbox.http.add("GET", f"{URL}/x", text=f"echo {TOKEN}")
    return plugbox.run(
        jobs.leaky,
        manifest=jobs.manifest,
        config={"api_url": URL, "export_dir": "exports", **config},
        secrets={"API_TOKEN": TOKEN},
        in_process=in_process,
    )


def test_the_secret_is_redacted_from_everything_the_run_reports(
    plugbox: Harness, settings_jobs: ModuleType, in_process: bool
) -> None:
    result = run_leaky(plugbox, settings_jobs, in_process)
    assert result.ok, result.error
    dumped = result.outcome.model_dump_json()
    for form in (TOKEN, "s3cr3t-Tok%2Fen%2Bvalue", base64.b64encode(TOKEN.encode()).decode()):
        assert form not in dumped
    assert result.result == {
        "token": "[secret API_TOKEN]",
        "body": "echo [secret API_TOKEN]",
        "limit": 3,
    }
    (entry,) = result.log
    assert entry.message == "token is [secret API_TOKEN]"
    assert entry.fields == {"token": "[secret API_TOKEN]", "nested": {"t": ["[secret API_TOKEN]"]}}
    assert result.events[0].data == {
        "[secret API_TOKEN]": "[secret API_TOKEN]",
        "quoted": "[secret API_TOKEN]",
    }
    # The job itself got the real value: it sent it and wrote what came back.
    (sent,) = plugbox.http.requests
    assert TOKEN in sent.url
    assert (plugbox.workspace / "exports" / "out.txt").read_text() == f"echo {TOKEN}"


def test_a_failure_is_redacted_too(
    plugbox: Harness, settings_jobs: ModuleType, in_process: bool
) -> None:
    result = run_leaky(plugbox, settings_jobs, in_process, limit=0)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.message == "failed with [secret API_TOKEN]"
    assert TOKEN not in result.error.traceback


def test_bindings_resolve_from_the_operators_values_and_are_recorded(
    plugbox: Harness, settings_jobs: ModuleType
) -> None:
    result = run_leaky(plugbox, settings_jobs, False, export_dir="out/today")
    assert result.ok, result.error
    assert [(b.rule, b.value) for b in result.outcome.enforcement.bindings] == [
        ("net.allow_hosts <- config.api_url", "api.internal:8443"),
        ("fs[0].allow <- config.export_dir", "/out/today/"),
    ]
    assert (plugbox.workspace / "out" / "today" / "out.txt").exists()


def test_a_url_binds_its_schemes_port_and_grants_still_narrow(
    plugbox: Harness, settings_jobs: ModuleType
) -> None:
    plugbox.http.add("GET", "https://api.internal:443/x", text="wrong port")
    result = plugbox.run(
        settings_jobs.leaky,
        manifest=settings_jobs.manifest,
        config={"api_url": "https://api.internal", "export_dir": "e"},  # port 443
        secrets={"API_TOKEN": TOKEN},
    )
    assert result.ok, result.error  # https://api.internal means port 443: that is allowed
    plugbox.http.add("GET", f"{URL}/x", text="right")
    result = plugbox.run(
        settings_jobs.leaky,
        manifest=settings_jobs.manifest,
        config={"api_url": "https://api.internal", "export_dir": "e"},
        secrets={"API_TOKEN": TOKEN},
        grants=[{"net": {"allow_hosts": ["other.example"]}}],
    )
    assert result.status == "failed"  # the operator's grant narrows a resolved rule too
    assert result.denials[0].target == "api.internal:443"


def test_missing_values_name_every_key_to_set(plugbox: Harness, settings_jobs: ModuleType) -> None:
    with pytest.raises(NotConfiguredError) as caught:
        plugbox.run(settings_jobs.leaky, manifest=settings_jobs.manifest, config={"limit": "x"})
    text = str(caught.value)
    assert "config: 'api_url' is a required property" in text
    assert "config.limit: 'x' is not of type 'integer'" in text
    assert "config.api_url: not set; the job's permissions bind to it" in text
    assert "secrets.API_TOKEN: not provided" in text
    # The declared default of a bound key is never used for the binding.
    with pytest.raises(NotConfiguredError, match=r"config\.export_dir: not set.*'exports'"):
        plugbox.run(
            settings_jobs.leaky,
            manifest=settings_jobs.manifest,
            config={"api_url": URL},
            secrets={"API_TOKEN": TOKEN},
        )


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"api_url": "*.example.com"}, "wildcards are for literal rules"),
        ({"api_url": "ftp://x.example.com"}, "only http:// and https://"),
        ({"export_dir": "../up"}, "'..' would leave the workspace"),
        ({"export_dir": "."}, "names the workspace root"),
        ({"nope": 1}, "the job declares no config key 'nope'"),
    ],
)
def test_values_that_cannot_be_used_are_refused(
    plugbox: Harness, settings_jobs: ModuleType, config: dict[str, object], why: str
) -> None:
    with pytest.raises(NotConfiguredError, match=why.replace("*", r"\*").replace("?", r"\?")):
        plugbox.run(
            settings_jobs.leaky,
            manifest=settings_jobs.manifest,
            config={"api_url": URL, "export_dir": "exports", **config},
            secrets={"API_TOKEN": TOKEN},
        )


def test_an_undeclared_secret_is_denied(plugbox: Harness, settings_jobs: ModuleType) -> None:
    result = plugbox.run(
        settings_jobs.undeclared, manifest=settings_jobs.manifest, secrets={"API_TOKEN": TOKEN}
    )
    assert result.status == "failed"
    assert result.error is not None and result.error.type == "PermissionDenied"
    assert "secrets.get 'OTHER' denied by secrets" in result.error.message
    assert "declared: API_TOKEN" in result.error.message
