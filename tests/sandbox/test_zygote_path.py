"""The zygote's import path: isolated, from ``/``, the host's extra entries appended last.

``tests/sandbox/attacks/test_interpreter_path.py`` plants modules where jobs write and runs the
CLI; here the host's own ``sys.path`` carries a directory that shadows ``socket`` and ``json``
(as a ``PYTHONPATH`` entry would, first) and the host's working directory holds them too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugbox.sandbox import RunContext, RunRequest, SandboxRunner
from plugbox.sdk import permissions as perms

JOBS_DIR = str(Path(__file__).parent / "jobs")
MARKER = 'open({proof!r} + "/imported-" + __name__, "w").close()\n'


def plant(where: Path, proof: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for name in ("socket", "json"):
        (where / f"{name}.py").write_text(MARKER.format(proof=str(proof)))


def test_host_path_entries_never_shadow_and_the_cwd_is_never_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proof = tmp_path / "proof"
    proof.mkdir()
    extra = tmp_path / "pythonpath"
    cwd = tmp_path / "cwd"
    plant(extra, proof)
    plant(cwd, proof)
    # Controls: a plain interpreter imports the markers from each place.
    for where, env in ((cwd, {}), (tmp_path, {"PYTHONPATH": str(extra)})):
        subprocess.run(
            [sys.executable, "-c", "import socket, json"],
            cwd=where,
            env={"PATH": os.environ["PATH"], **env},
            check=False,
        )
        assert sorted(os.listdir(proof)) == ["imported-json", "imported-socket"], where
        for name in os.listdir(proof):
            os.unlink(proof / name)

    monkeypatch.syspath_prepend(str(extra))  # first, as PYTHONPATH puts it
    monkeypatch.chdir(cwd)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with SandboxRunner(prewarm=False) as runner:
        outcome = runner.run(
            RunRequest(
                handler="plugbox_deadline_jobs:import_path",
                workspace=str(workspace),
                context=RunContext(job_id="p", plugin_id="t", plugin_version="0", run_id=""),
                permissions=perms.presets.plugin_workspace("t"),
                python_path=(JOBS_DIR,),
            )
        )
    assert outcome.status == "success", outcome.error
    assert os.listdir(proof) == []
    found = outcome.result
    assert isinstance(found, dict)
    assert not found["socket"].startswith(str(tmp_path))
    assert not found["json"].startswith(str(tmp_path))
    path = found["sys_path"]
    assert str(cwd) not in path and "" not in path
    stdlib = os.path.dirname(os.__file__)
    assert path.index(str(extra)) > path.index(stdlib)  # appended after the interpreter's own
