"""Class A, the interpreter: nothing a job can write is on the zygote's import path.

The review's job wrote ``socket.py`` into the workspace, which was the working directory of the
host — and so ``sys.path[0]`` of the next host's unconfined zygote, which imported it. Here
modules that write a proof file when imported (``socket``, ``json``, ``plugbox.sandbox``) sit
in the host's working directory and in the workspace. The control shows they work: a plain
``python -c`` started there imports all three. The host, its zygote and every run must not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import Host

MARKER = """import os
open(os.path.join({proof!r}, "imported-" + __name__ + "-" + str(os.getpid())), "w").close()
"""
NAMES = ("socket", "json", "plugbox.sandbox")


def plant(where: Path, proof: Path) -> None:
    (where / "socket.py").write_text(MARKER.format(proof=str(proof)))
    (where / "json.py").write_text(MARKER.format(proof=str(proof)))
    (where / "plugbox" / "sandbox").mkdir(parents=True)
    (where / "plugbox" / "sandbox" / "__init__.py").write_text(MARKER.format(proof=str(proof)))


def imported(proof: Path) -> set[str]:
    return {name.split("-")[1] for name in os.listdir(proof)}


def test_modules_planted_where_jobs_write_are_never_imported(host: Host) -> None:
    proof = host.scratch / "proof"
    proof.mkdir()
    proof.chmod(0o777)
    plant(host.scratch, proof)  # the host's working directory
    plant(host.workspace, proof)  # the jobs' working directory
    control = subprocess.run(
        [sys.executable, "-c", "import socket, json, plugbox.sandbox"],
        cwd=host.workspace,
        capture_output=True,
        check=False,
    )
    assert imported(proof) == set(NAMES), control.stderr  # the markers would have told
    for name in os.listdir(proof):
        os.unlink(proof / name)

    listed = host.cli("plugins", "list", "--json")  # discovery forks from the zygote too
    assert listed.returncode == 0, listed.stderr
    attack = host.attack("control")
    assert attack.control["cwd"] == str(host.workspace)
    assert imported(proof) == set()
