"""The zygote (the fork server every run is forked from) SIGKILLed while a job runs.

The run it carried ends ``failed`` with a reason that says the sandbox process died, and the next
run works: the runner starts a new zygote. On SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.host import faults_harness as h


@pytest.fixture(params=["sqlite", "postgresql"])
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[h.Serve]:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        url = f"sqlite:///{tmp_path / 'db' / 'plugbox.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    site = tmp_path / "site"
    h.install(site)
    started = h.Serve(
        tmp_path / "host",
        url,
        f'workers = 2\nplugin_paths = ["{site}"]\n[jobs."{h.JOB}"]\nschedule = "*/4 * * * * *"\n',
    )
    try:
        yield started
    finally:
        started.stop()


def test_zygote_killed_mid_run_fails_the_run_and_the_next_run_works(serve: h.Serve) -> None:
    serve.start()
    running = h.wait_for(
        lambda: next(
            (r for r in h.history(serve.url) if r.status == "running" and r.attempt == 1), None
        ),
        what="a first attempt running",
    )
    h.run_child(serve)  # the job runs in its child
    zygote = h.wait_for(
        lambda: [p for p in serve.family() if p.name() == "plugbox-zygote"], what="the zygote"
    )[0]
    zygote.send_signal(signal.SIGKILL)
    zygote.wait(timeout=10)  # control: the zygote is dead, with the run in flight

    def ended() -> h.RunRecord | None:
        record = h.run_of(serve.url, running.run_id)
        return record if record.status not in ("running", "queued") else None

    record = h.wait_for(ended, timeout=60, what="the cut-off run to end")
    # Handled by: the runner's zygote client, which ends every run in flight when its zygote's
    # socket closes, and says why.
    assert record.status == "failed"
    assert record.error is not None and record.error.type == "SandboxDied"
    assert "plugbox-zygote" in record.error.message and "died" in record.error.message
    later = h.wait_for(
        lambda: [
            r
            for r in h.history(serve.url)
            if r.status == "success" and r.started_at and r.started_at > record.finished_at
        ],
        timeout=60,
        what="a run after the zygote died that succeeds",
    )
    assert later
    # Handled by: the runner, which starts a new zygote for the next run.
    new = [p for p in serve.family() if p.name() == "plugbox-zygote"]
    assert new and new[0].pid != zygote.pid
