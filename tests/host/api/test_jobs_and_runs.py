"""The API's behaviour: triggers are real runs recorded with who asked, pages, pause, cancel,
and one error shape for every failure."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from tests.host.api.conftest import Api, cli, wait_until

ERROR_KEYS = {"code", "message", "problems"}


def error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == ERROR_KEYS and body["code"] == code and body["message"]
    return body


def finished(client: httpx.Client, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        record: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        return None if record["status"] in ("queued", "running") else record

    return wait_until(done)  # type: ignore[no-any-return]


def test_health_and_readiness(api: Api) -> None:
    with api.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "plugins_discovered": True,
        "store_reachable": True,
        "scheduler_ticking": True,
        "detail": "",
    }


def test_a_trigger_is_a_manual_run_recorded_with_the_token_name(api: Api) -> None:
    with api.client("trigger") as client:
        answer = client.post("/jobs/example:hello-cron/trigger")
        assert answer.status_code == 202
        queued = answer.json()
        assert (queued["status"], queued["trigger"], queued["requested_by"]) == (
            "queued",
            "manual",
            "trigger-bot",
        )
        record = finished(client, queued["run_id"])
    assert record["status"] == "success", record
    assert (record["trigger"], record["requested_by"]) == ("manual", "trigger-bot")
    assert record["result"]["ok"] is True and record["log"] and record["enforcement"]
    # The CLI reads the same record from the same store.
    shown = json.loads(cli(api.served.config, "runs", "show", queued["run_id"], "--json").stdout)
    assert shown == record


def test_wait_true_answers_with_the_outcome(api: Api) -> None:
    with api.client("trigger") as client:
        answer = client.post("/jobs/apitest%3Aquick/trigger", params={"wait": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "success"
    assert answer.json()["result"] == {"ok": True}


def test_wait_is_bounded(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.post("/jobs/apitest:nap/trigger", params={"wait": "true", "timeout": 0.5})
        assert answer.status_code == 202 and answer.json()["status"] in ("queued", "running")
        run_id = answer.json()["run_id"]
        wait_until(lambda: client.get(f"/runs/{run_id}").json()["status"] == "running")
        cancelled = client.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 202
        record = finished(client, run_id)
    assert record["status"] == "cancelled"
    assert record["cancelled_by"] == "admin-bot"
    assert "admin-bot" in record["reason"]
    with api.client("admin") as client:
        error(client.post(f"/runs/{run_id}/cancel"), 409, "RUN_FINISHED")


def test_percent_encoded_ids_name_the_same_job(api: Api) -> None:
    with api.client("read") as client:
        plain = client.get("/jobs/example:hello-cron").json()
        encoded = client.get("/jobs/example%3Ahello-cron").json()
    assert plain["id"] == encoded["id"] == "example:hello-cron"
    assert plain["schedule_words"] == "Every 5 minutes (UTC)"
    assert len(plain["next_fires"]) == 5 and plain["timezone"] == "UTC"


def test_jobs_filters(api: Api) -> None:
    with api.client("read") as client:
        by_plugin = client.get("/jobs", params={"plugin": "apitest"}).json()["jobs"]
        by_tag = client.get("/jobs", params={"tag": "fast"}).json()["jobs"]
        disabled = client.get("/jobs", params={"state": "disabled"}).json()["jobs"]
    assert {j["id"] for j in by_plugin} == {
        "apitest:nap",
        "apitest:doze",
        "apitest:quick",
        "apitest:off",
    }
    assert [j["id"] for j in by_tag] == ["apitest:quick"]
    assert [j["id"] for j in disabled] == ["apitest:off"]


def test_jobs_come_a_page_at_a_time(api: Api) -> None:
    with api.client("read") as client:
        everything = client.get("/jobs").json()
        pages, cursor = [], None
        while True:
            params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
            page = client.get("/jobs", params=params).json()
            pages.append([job["id"] for job in page["jobs"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        stale = client.get("/jobs", params={"cursor": "gone:job"})
        too_many = client.get("/jobs", params={"limit": 1001})
    assert everything["next_cursor"] is None
    assert [i for page in pages for i in page] == [job["id"] for job in everything["jobs"]]
    assert all(len(page) == 2 for page in pages[:-1]) and len(pages) > 2
    assert "list again from the first page" in error(stale, 422, "INVALID_REQUEST")["message"]
    error(too_many, 422, "INVALID_REQUEST")


def test_the_job_list_shows_a_run_as_soon_as_it_ends(api: Api) -> None:
    """GET /jobs answers are served again for a second, but not past a run of this host."""
    with api.client("trigger") as client:
        client.get("/jobs", params={"plugin": "apitest"})  # rendered, and kept
        run = client.post("/jobs/apitest:quick/trigger", params={"wait": "true"}).json()
        assert run["status"] == "success", run
        listed = client.get("/jobs", params={"plugin": "apitest"}).json()["jobs"]
    quick = next(job for job in listed if job["id"] == "apitest:quick")
    assert quick["last_run"]["run_id"] == run["run_id"]
    assert quick["last_run"]["status"] == "success" and quick["success_rate"] == 1.0


def test_pause_and_resume_are_kept_with_who_and_refuse_triggers(api: Api) -> None:
    with api.client("admin") as client:
        paused = client.post("/jobs/example:cleanup/pause").json()
        assert (paused["paused"], paused["changed_by"]) == (True, "admin-bot")
        job = client.get("/jobs/example:cleanup").json()
        assert job["state"] == "paused" and job["next_fire"] is None
        assert job["pause"]["changed_by"] == "admin-bot"
        error(client.post("/jobs/example:cleanup/trigger"), 409, "JOB_PAUSED")
        # The CLI, reading the store, sees the same.
        listed = json.loads(cli(api.served.config, "jobs", "list", "--json").stdout)["jobs"]
        assert next(j for j in listed if j["job"] == "example:cleanup")["paused"] is True
        resumed = client.post("/jobs/example:cleanup/resume").json()
        assert (resumed["paused"], resumed["changed_by"]) == (False, "admin-bot")
        assert client.get("/jobs/example:cleanup").json()["state"] == "enabled"


def test_stats_per_job(api: Api) -> None:
    with api.client("trigger") as client:
        client.post("/jobs/apitest:quick/trigger", params={"wait": "true"})
        stats = client.get("/jobs/stats").json()["jobs"]
    quick = next(s for s in stats if s["job"] == "apitest:quick")
    assert quick["counts"]["success"] >= 1 and quick["success_rate"] == 1.0
    assert quick["p50_duration_ms"] is not None and quick["last_run"]["job"] == "apitest:quick"


def test_runs_page_newest_first_with_a_cursor(api: Api) -> None:
    with api.client("trigger") as client:
        for _ in range(3):
            client.post("/jobs/apitest:quick/trigger", params={"wait": "true"})
        everything = client.get("/runs", params={"job": "apitest:quick", "limit": 200}).json()
        assert everything["next_cursor"] is None
        seen: list[str] = []
        params: dict[str, Any] = {"job": "apitest:quick", "limit": 2}
        while True:
            page = client.get("/runs", params=params).json()
            seen += [r["run_id"] for r in page["runs"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        manual = client.get("/runs", params={"trigger": "schedule"}).json()["runs"]
        since = client.get("/runs", params={"since": "2999-01-01T00:00:00Z"}).json()["runs"]
    assert seen == [r["run_id"] for r in everything["runs"]] and len(seen) >= 3
    starts = [r["started_at"] for r in everything["runs"]]
    assert starts == sorted(starts, reverse=True)
    assert manual == [] and since == []


def test_plugins_show_permissions_enforcement_and_problems(api: Api) -> None:
    with api.client("read") as client:
        listed = client.get("/plugins").json()
        example = client.get("/plugins/example").json()
        broken = client.get("/plugins/broken")
        error(client.get("/jobs/broken:anything"), 409, "PLUGIN_BROKEN")
    assert {"example", "apitest"} <= {p["id"] for p in listed["plugins"]}
    assert any("broken on purpose" in p["reason"] for p in listed["problems"])
    hello = example["job_permissions"]["hello-cron"]
    assert hello["kernel_write_roots"] == [".plugbox/example"]
    assert set(example["enforcement"]) >= {"fs", "net"}
    assert "broken on purpose" in error(broken, 409, "PLUGIN_BROKEN")["message"]


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "code"),
    [
        ("GET", "/jobs/example:nope", {}, 404, "JOB_NOT_FOUND"),
        ("GET", "/jobs/not-a-job-id", {}, 404, "JOB_NOT_FOUND"),
        ("POST", "/jobs/nope:nope/trigger", {}, 404, "JOB_NOT_FOUND"),
        ("POST", "/jobs/apitest:off/trigger", {}, 409, "JOB_DISABLED"),
        ("GET", "/plugins/nope", {}, 404, "JOB_NOT_FOUND"),
        ("GET", "/runs/nope", {}, 404, "RUN_NOT_FOUND"),
        ("POST", "/runs/nope/cancel", {}, 404, "RUN_NOT_FOUND"),
        ("GET", "/runs", {"limit": 0}, 422, "INVALID_REQUEST"),
        ("GET", "/runs", {"status": "happy"}, 422, "INVALID_REQUEST"),
        ("GET", "/runs", {"cursor": "garbage!"}, 422, "INVALID_REQUEST"),
        ("GET", "/runs", {"since": "2026-01-01T00:00:00"}, 422, "INVALID_REQUEST"),
        ("GET", "/runs", {"until": "0.5"}, 422, "INVALID_REQUEST"),
        ("GET", "/jobs", {"state": "asleep"}, 422, "INVALID_REQUEST"),
        ("POST", "/jobs/example:hello-cron/trigger", {"timeout": -1}, 422, "INVALID_REQUEST"),
        ("GET", "/nowhere", {}, 404, "INVALID_REQUEST"),
        ("DELETE", "/jobs", {}, 405, "INVALID_REQUEST"),
    ],
)
def test_every_error_has_one_shape(
    api: Api, method: str, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    with api.client("admin") as client:
        body = error(client.request(method, path, params=params), status, code)
    if status == 422:
        assert body["problems"] or "cursor" in body["message"] or "time zone" in body["message"]


def test_a_trigger_obeys_the_concurrency_policy(api: Api) -> None:
    with api.client("admin") as client:
        first = client.post("/jobs/apitest:nap/trigger").json()["run_id"]
        wait_until(lambda: client.get(f"/runs/{first}").json()["status"] == "running")
        # concurrency = "forbid": the second run is recorded, skipped, and says why.
        second = client.post("/jobs/apitest:nap/trigger").json()["run_id"]
        record = finished(client, second)
        client.post(f"/runs/{first}/cancel")
        finished(client, first)
    assert (record["status"], record["requested_by"]) == ("skipped", "admin-bot")
    assert "still active" in record["reason"]


def test_a_queued_run_is_cancelled_before_it_starts(api: Api) -> None:
    with api.client("admin") as client:
        sleepers = [
            client.post(f"/jobs/apitest:{job}/trigger").json()["run_id"] for job in ("nap", "doze")
        ]
        for run_id in sleepers:  # both workers are busy now
            wait_until(
                lambda run_id=run_id: client.get(f"/runs/{run_id}").json()["status"] == "running"
            )
        queued = client.post("/jobs/apitest:quick/trigger").json()["run_id"]
        answer = client.post(f"/runs/{queued}/cancel")
        for run_id in sleepers:
            client.post(f"/runs/{run_id}/cancel")
        for run_id in sleepers:
            finished(client, run_id)
        record = client.get(f"/runs/{queued}").json()
    assert answer.status_code == 202
    assert answer.json()["status"] == "cancelled" == record["status"]
    assert record["cancelled_by"] == "admin-bot" and "before it started" in record["reason"]
    assert record["started_at"] is None
