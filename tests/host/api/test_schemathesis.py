"""The OpenAPI document is the truth: schemathesis against a real ``plugbox serve``.

Every operation, a seeded run of 200 generated cases per operation (operations without any input
have one possible request, and get it), and the stateful phase, which follows the document's
links from a trigger to its run. Zero server errors, zero answers that break the schema, and
every malformed request refused. Takes about 4-5 minutes on 2 cores; it runs the real sandbox
for every trigger it makes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.host.api.conftest import cli, start_serve, write_config

CASES = 200
SEED = 20261207
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
]
#: Operations with no parameter: one request is all there is to generate.
WITHOUT_INPUT = {"GET /healthz", "GET /readyz", "GET /plugins", "GET /jobs/stats", "GET /metrics"}


def _scenarios(report: Path) -> list[dict[str, Any]]:
    found = []
    for line in report.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            found.append(event["ScenarioFinished"])
    return found


def _body(interaction: dict[str, Any] | None) -> tuple[int | None, Any]:
    response = (interaction or {}).get("response") or {}
    content = response.get("content") or {}
    raw = base64.b64decode(content["$base64"]) if "$base64" in content else b""
    return response.get("status_code"), json.loads(raw) if raw else None


def _follows_a_trigger_to_its_run(scenario: dict[str, Any]) -> bool:
    """Whether this stateful scenario triggered a job and then read that very run."""
    recorder = scenario.get("recorder") or {}
    triggered: set[str] = set()
    for case_id, case in recorder.get("cases", {}).items():
        value = case["value"]
        status, body = _body(recorder.get("interactions", {}).get(case_id))
        if value["path"] == "/jobs/{job_id}/trigger" and status in (200, 202):
            triggered.add(body["run_id"])
        elif (
            value["path"] == "/runs/{run_id}"
            and value["method"] == "GET"
            and status == 200
            and value["path_parameters"]["run_id"] in triggered
        ):
            return True
    return False


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "host", napping=False)
    token = cli(config, "tokens", "create", "fuzz", "--scopes", "admin").stdout.strip()
    served = start_serve(config)
    report = tmp_path / "events.ndjson"
    try:
        out = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{served.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                str(CASES),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--checks",
                ",".join(CHECKS),
                "--request-timeout",
                "120",
                "--generation-database",
                "none",
                "--no-color",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=1800,
        )
    finally:
        assert served.stop() == 0, "".join(served.stderr)
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    assert "Operations:       14 selected / 14 total" in out.stdout, out.stdout[-3000:]

    scenarios = _scenarios(report)
    fuzzed: Counter[str] = Counter()
    for scenario in scenarios:
        if scenario["phase"] == "fuzzing" and scenario.get("recorder"):
            fuzzed[scenario["recorder"]["label"]] += len(scenario["recorder"]["cases"])
    assert len(fuzzed) == 14, fuzzed
    for operation, count in fuzzed.items():
        assert count >= (1 if operation in WITHOUT_INPUT else CASES), (operation, count)
    stateful = [s for s in scenarios if s["phase"] == "stateful"]
    assert any(_follows_a_trigger_to_its_run(s) for s in stateful), "no trigger -> run link"
