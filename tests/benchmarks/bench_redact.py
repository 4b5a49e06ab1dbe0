"""Cost of taking a run's secrets out of its outcome (``plugbox.sandbox.redact``), per run.

Run: ``.venv/bin/python tests/benchmarks/bench_redact.py``. Prints one JSON object: for outcomes
with 0, 10 and 1,000 log lines (each with fields, a 10 KB output, a 100-item result), the median
microseconds of ``redact_outcome`` with one secret when no text holds it (``clean_us``: the
common case, one search of the outcome's JSON) and when the output does (``leaked_us``: the
whole outcome is walked and rebuilt).
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime

from plugbox.sandbox.outcome import Event, LogEntry, Outcome, advisory_enforcement
from plugbox.sandbox.redact import redact_outcome

SECRETS = {"TOKEN": "s3cr3t-token-value"}
NOW = datetime.now(UTC)


def outcome(lines: int, *, leaked: bool) -> Outcome:
    return Outcome(
        status="success",
        result={"text": "v" * 100, "items": list(range(100))},
        started_at=NOW,
        finished_at=NOW,
        duration_ms=1,
        log=tuple(
            LogEntry(level="info", message=f"line {i}", fields={"n": i, "s": "x" * 50}, at=0.0)
            for i in range(lines)
        ),
        events=tuple(Event(name="e", data={"i": i}, at=0.0) for i in range(lines // 10)),
        output="o" * 10_000 + (SECRETS["TOKEN"] if leaked else ""),
        enforcement=advisory_enforcement("sandbox", "benchmark"),
    )


def median_us(item: Outcome, rounds: int = 30) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        redact_outcome(item, SECRETS)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def main() -> None:
    report = {
        f"lines_{lines}": {
            "clean_us": median_us(outcome(lines, leaked=False)),
            "leaked_us": median_us(outcome(lines, leaked=True)),
        }
        for lines in (0, 10, 1_000)
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
