"""Fake HTTP answers only what the job may reach: checks first, then the fake, never the network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType

import pytest

from plugbox.sandbox import SandboxRunner
from plugbox.sandbox.net_request import NetRequest
from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import FakeHttp, Harness, NoFakeResponseError, assert_denied

from .conftest import serving


def get(http: FakeHttp, url: str, method: str = "GET") -> tuple[int, str]:
    response = http(NetRequest(method, url))
    return response.status, response.text


def test_json_text_body_and_headers() -> None:
    http = FakeHttp()
    http.add("GET", "https://api.example.com/j", json={"a": 1})
    http.add("GET", "https://api.example.com/t", text="hi", status=201)
    http.add("POST", "https://api.example.com/b", body=b"\x00", headers={"X-Id": "7"})
    j = http(NetRequest("GET", "https://api.example.com/j"))
    assert (j.status, j.json(), j.headers["Content-Type"]) == (200, {"a": 1}, "application/json")
    assert get(http, "https://api.example.com/t") == (201, "hi")
    b = http(NetRequest("post", "https://api.example.com/b"))
    assert (b.content, dict(b.headers)) == (b"\x00", {"X-Id": "7"})
    http.add("GET", "https://api.example.com/null", json=None)
    assert get(http, "https://api.example.com/null") == (200, "null")


def test_matching_by_method_url_and_query() -> None:
    http = FakeHttp()
    http.add("GET", "https://API.example.com:443/items", text="any query")
    http.add("GET", "https://api.example.com/items?page=2&size=10", text="page 2")
    assert get(http, "https://api.example.com/items")[1] == "any query"
    assert get(http, "https://api.example.com/items?page=1")[1] == "any query"
    assert get(http, "https://api.example.com/items?size=10&page=2")[1] == "page 2"
    with pytest.raises(NoFakeResponseError):
        get(http, "https://api.example.com/items", method="DELETE")
    with pytest.raises(NoFakeResponseError):
        get(http, "http://api.example.com/items")  # another scheme and port


def test_responses_for_one_url_are_given_in_order_and_the_last_repeats() -> None:
    http = FakeHttp()
    http.add("GET", "https://api.example.com/flaky", status=503)
    http.add("GET", "https://api.example.com/flaky", text="ok")
    assert [get(http, "https://api.example.com/flaky")[0] for _ in range(3)] == [503, 200, 200]


def test_an_unfaked_request_names_itself_and_how_to_fake_it() -> None:
    http = FakeHttp()
    http.add("GET", "https://api.example.com/known", json={})
    with pytest.raises(NoFakeResponseError) as raised:
        get(http, "https://api.example.com/other?x=1", method="POST")
    message = str(raised.value)
    assert "no fake response for POST https://api.example.com/other?x=1" in message
    assert 'plugbox.http.add("POST", "https://api.example.com/other?x=1", json=...)' in message
    assert "fakes: GET https://api.example.com/known" in message
    assert isinstance(raised.value, ConnectionError)


def test_bad_fakes_are_refused() -> None:
    http = FakeHttp()
    with pytest.raises(TypeError, match="at most one of json=, text=, body= \\(got json, text\\)"):
        http.add("GET", "https://api.example.com/", json={}, text="x")
    with pytest.raises(ValueError, match="not an http\\(s\\) URL"):
        http.add("GET", "ftp://files.example.com/x")
    with pytest.raises(ValueError, match="port"):
        http.add("GET", "https://api.example.com:99999/")


def test_a_faked_allowed_url_answers_the_job(plugbox: Harness, jobs: ModuleType) -> None:
    plugbox.http.add("POST", "https://api.example.com/notes", status=201, json={"id": 9})
    result = plugbox.run(
        jobs.fetch,
        config={"method": "POST", "url": "https://api.example.com/notes", "body": {"n": 1}},
    )
    assert result.status == "success", result.error
    assert result.result == {
        "status": 201,
        "text": '{"id": 9}',
        "url": "https://api.example.com/notes",
    }
    (sent,) = plugbox.http.requests
    assert (sent.method, sent.url, json.loads(sent.body or b"")) == (
        "POST",
        "https://api.example.com/notes",
        {"n": 1},
    )
    # What docs/testing.md says a faked request carries, and nothing else.
    assert sorted(NetRequest.__dataclass_fields__) == [
        "body",
        "headers",
        "method",
        "timeout",
        "url",
    ]
    assert dict(sent.headers) == {"Content-Type": "application/json"}
    assert isinstance(sent.timeout, float) and 0 < sent.timeout <= 30


def test_a_faked_request_method_is_upper_cased(plugbox: Harness, jobs: ModuleType) -> None:
    plugbox.http.add("GET", "https://api.example.com/notes", text="ok")
    result = plugbox.run(
        jobs.fetch, config={"method": "get", "url": "https://api.example.com/notes?a=1"}
    )
    assert result.ok, result.error
    (sent,) = plugbox.http.requests
    assert (sent.method, sent.url, sent.body) == ("GET", "https://api.example.com/notes?a=1", None)


def test_a_fake_never_opens_a_url_the_job_may_not_reach(plugbox: Harness, jobs: ModuleType) -> None:
    plugbox.http.add("GET", "https://evil.example/steal", json={"secret": 1})
    result = plugbox.run(jobs.fetch, config={"url": "https://evil.example/steal"})
    assert result.status == "failed"
    assert result.error is not None and result.error.type == "PermissionDenied"
    denial = assert_denied(result, "net.connect", "evil.example:443", rule="default deny")
    assert denial.reason == "no allow_hosts pattern matches"
    assert assert_denied(result, "net.connect", "EVIL.example") == denial  # a host: any port
    assert plugbox.http.requests == ()


def test_a_fake_redirect_is_checked_again(plugbox: Harness, jobs: ModuleType) -> None:
    plugbox.http.add(
        "GET",
        "https://api.example.com/moved",
        status=302,
        headers={"Location": "http://169.254.169.254/latest/meta-data"},
    )
    result = plugbox.run(jobs.fetch, config={"url": "https://api.example.com/moved"})
    assert result.status == "failed"
    assert_denied(result, "net.connect", "169.254.169.254:80", rule="default deny")
    assert [r.url for r in plugbox.http.requests] == ["https://api.example.com/moved"]


def test_an_unfaked_url_fails_inside_the_job(
    plugbox: Harness, jobs: ModuleType, in_process: bool
) -> None:
    result = plugbox.run(
        jobs.fetch, config={"url": "https://api.example.com/missing"}, in_process=in_process
    )
    assert result.status == "failed"
    assert result.error is not None
    assert "no fake response for GET https://api.example.com/missing" in result.error.message
    assert 'plugbox.http.add("GET", "https://api.example.com/missing"' in result.error.message
    assert [r.url for r in plugbox.http.requests] == ["https://api.example.com/missing"]


@pytest.fixture
def local_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"real {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as address:
        yield address


def test_passthrough_reaches_the_network_only_when_asked(
    tmp_path: Path, jobs: ModuleType, local_server: str, plugbox_runner: SandboxRunner
) -> None:
    allowed = perms.presets.http_hosts(local_server)
    url = f"http://{local_server}/live"
    with Harness(tmp_path / "a", runner=plugbox_runner) as closed:
        result = closed.run(jobs.fetch, config={"url": url}, permissions=allowed)
        assert result.status == "failed"
        assert result.error is not None and "no fake response" in result.error.message

    with Harness(tmp_path / "b", runner=plugbox_runner, http=FakeHttp(passthrough=True)) as open_:
        open_.http.add("GET", f"http://{local_server}/faked", text="fake")
        live = open_.run(jobs.fetch, config={"url": url}, permissions=allowed)
        assert live.result == {"status": 200, "text": "real /live", "url": url}, live.error
        faked = open_.run(
            jobs.fetch, config={"url": f"http://{local_server}/faked"}, permissions=allowed
        )
        assert faked.result["text"] == "fake"
        # Passing through is no way around the checks.
        denied = open_.run(jobs.fetch, config={"url": url})
        assert_denied(denied, "net.connect", local_server, rule="default deny")
