"""Cost of a root zygote's mount view, paid once at its start (never per run).

Run as root: ``.venv/bin/python tests/benchmarks/bench_mount_view.py``. Prints one JSON object:
``enter_ms`` (median and max over 20 fresh processes: ``mount_view.enter`` for this interpreter's
code paths — the folders found, the namespace made, each folder covered and its entries put back)
and ``covered`` (how many folders this machine needed opened; 0 means the view was not needed and
no namespace was made, so the figure is only the search for folders).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from plugbox.sandbox.kernel import mount_view, namespaces
from plugbox.sandbox.run_identity import RUN_ID, RunIdentity
from plugbox.sandbox.spawn_spec import code_paths

ROUNDS = 20


def _trial() -> str:
    paths = code_paths()  # the runner has them already: not part of the zygote's cost
    started = time.perf_counter()
    view = mount_view.enter(RunIdentity(RUN_ID, RUN_ID), paths)
    elapsed = time.perf_counter() - started
    if view.problem:
        raise OSError(view.problem)
    return f"{elapsed * 1000:.3f} {len(view.covered)}"


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("the mount view is a root host's: run this as root")
    reports = []
    for _ in range(ROUNDS):
        ok, report = namespaces.in_forked_child(_trial)
        if not ok:
            sys.exit(f"the mount view failed here: {report}")
        reports.append(report.split())
    millis = [float(ms) for ms, _ in reports]
    result = {
        "enter_ms": {"median": round(statistics.median(millis), 3), "max": round(max(millis), 3)},
        "covered": int(reports[0][1]),
        "rounds": ROUNDS,
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
