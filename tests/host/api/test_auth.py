"""Who may call what: 401 without or with an unknown token, 403 lacking the scope, else served.

Every operation in the OpenAPI document is in the matrix, and a test checks that none is
missing, so a new endpoint cannot ship without its scope being pinned here.
"""

from __future__ import annotations

import pytest
from tests.host.api.conftest import Api, cli

# (method, path, scope it needs); paths name things that exist where that matters.
MATRIX = [
    ("GET", "/plugins", "read"),
    ("GET", "/plugins/example", "read"),
    ("GET", "/jobs", "read"),
    ("GET", "/jobs/stats", "read"),
    ("GET", "/jobs/example:hello-cron", "read"),
    ("POST", "/jobs/apitest:quick/trigger", "trigger"),
    ("POST", "/jobs/example:cleanup/pause", "admin"),
    ("POST", "/jobs/example:cleanup/resume", "admin"),
    ("GET", "/runs", "read"),
    ("GET", "/runs/no-such-run", "read"),
    ("POST", "/runs/no-such-run/cancel", "admin"),
    ("GET", "/metrics", "read"),
]
OPEN = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json")]
RANK = ["read", "trigger", "admin"]


def test_the_matrix_covers_every_operation(api: Api) -> None:
    with api.client(None) as client:
        spec = client.get("/openapi.json").json()
    documented = {(m.upper(), path) for path, item in spec["paths"].items() for m in item}
    covered = {(m, _template(path)) for m, path, _ in MATRIX} | set(OPEN)
    assert documented <= covered, documented - covered


def _template(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "jobs" and parts[2] != "stats":
        parts[2] = "{job_id}"
    if len(parts) > 2 and parts[1] == "runs":
        parts[2] = "{run_id}"
    if len(parts) > 2 and parts[1] == "plugins":
        parts[2] = "{plugin_id}"
    return "/".join(parts)


@pytest.mark.parametrize(("method", "path", "needed"), MATRIX)
def test_without_a_token_or_with_an_unknown_one_it_is_401(
    api: Api, method: str, path: str, needed: str
) -> None:
    for client in (api.client(None), api.served.client("pbx_not-a-token")):
        with client:
            answer = client.request(method, path)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "UNAUTHORIZED"
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "needed"), MATRIX)
@pytest.mark.parametrize("held", RANK)
def test_scopes_nest(api: Api, method: str, path: str, needed: str, held: str) -> None:
    with api.client(held) as client:
        answer = client.request(method, path)
    if RANK.index(held) < RANK.index(needed):
        assert answer.status_code == 403, answer.text
        body = answer.json()
        assert body["code"] == "FORBIDDEN"
        assert f"{held}-bot" in body["message"] and needed in body["message"]
    else:
        # Allowed: whatever the answer, it is not about authorisation.
        assert answer.status_code not in (401, 403), answer.text


@pytest.mark.parametrize(("method", "path"), OPEN)
def test_health_and_the_schema_need_no_token(api: Api, method: str, path: str) -> None:
    with api.client(None) as client:
        assert client.request(method, path).status_code == 200


def test_a_revoked_token_stops_working_at_once(api: Api) -> None:
    token = cli(api.served.config, "tokens", "create", "short-lived").stdout.strip()
    with api.served.client(token) as client:
        assert client.get("/jobs").status_code == 200
        cli(api.served.config, "tokens", "revoke", "short-lived")
        assert client.get("/jobs").status_code == 401
