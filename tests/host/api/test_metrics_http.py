"""``GET /metrics`` of a real ``plugbox serve``: scopes, no redirect, and a triggered run counted."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from tests.host.api.conftest import Api, wait_until


def samples(body: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def test_metrics_need_the_read_scope_and_answer_without_a_redirect(api: Api) -> None:
    with api.client(None) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with api.client("read") as client:
        answer = client.get("/metrics", follow_redirects=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {s.name for s in samples(answer.text)}
    assert {"plugbox_queue_depth", "plugbox_workers_busy", "plugbox_plugins_loaded"} <= names


def test_a_triggered_run_is_counted(api: Api) -> None:
    with api.client("trigger") as client:
        done = client.post("/jobs/apitest:quick/trigger", params={"wait": "true"})
        assert done.status_code == 200 and done.json()["status"] == "success"

        def counted() -> bool:
            return any(
                s.name == "plugbox_runs_total"
                and s.labels
                == {
                    "plugin": "apitest",
                    "job": "apitest:quick",
                    "status": "success",
                    "trigger": "manual",
                }
                and s.value >= 1
                for s in samples(client.get("/metrics").text)
            )

        wait_until(counted)  # one render serves a second of scrapes
        with_last = samples(client.get("/metrics").text)
    assert any(
        s.name == "plugbox_job_last_success_timestamp_seconds"
        and s.labels == {"job": "apitest:quick"}
        for s in with_last
    )
