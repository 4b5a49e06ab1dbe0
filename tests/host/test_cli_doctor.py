"""`plugbox doctor` through the installed console script, as an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def plugbox() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found, "the plugbox console script is not installed next to this interpreter"
    return found


def test_doctor_json_reports_every_layer_active_here() -> None:
    out = subprocess.run(
        [plugbox(), "doctor", "--json"], check=True, capture_output=True, text=True
    )
    report = json.loads(out.stdout)
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert {"landlock", "seccomp", "pid namespace", "cgroups", "openat2"} <= set(layers)
    inactive = [name for name, layer in layers.items() if not layer["active"]]
    assert inactive == [], f"layers not active on this machine: {inactive}"
    assert "ABI" in layers["landlock"]["detail"]
    assert set(report["capabilities"].values()) == {"kernel"}


def test_doctor_says_which_folder_the_mount_view_opens_for_the_run_uid() -> None:
    """Python lives under /root (0700) on this project's machines: doctor names the way round."""
    if os.geteuid() != 0:
        pytest.skip("the run uid is a root host's")
    out = subprocess.run(
        [plugbox(), "doctor", "--json"], check=True, capture_output=True, text=True
    )
    layer = next(x for x in json.loads(out.stdout)["layers"] if x["name"] == "run uid")
    assert layer["active"], layer
    assert "jobs run as uid 65532" in layer["detail"]
    closed = [
        folder
        for folder in ("/root", "/home")
        if sys.base_prefix.startswith(folder + "/") and not os.stat(folder).st_mode & 0o001
    ]
    for folder in closed:
        assert f"lets it pass {folder}" in layer["detail"], layer


def test_doctor_hints_at_favordynmods_exactly_when_no_cgroup_mount_has_it() -> None:
    out = subprocess.run(
        [plugbox(), "doctor", "--json"], check=True, capture_output=True, text=True
    )
    hints = json.loads(out.stdout)["hints"]
    mounted = "favordynmods" in Path("/proc/self/mountinfo").read_text()
    assert any("favordynmods" in hint for hint in hints) is not mounted


def test_doctor_text_is_readable() -> None:
    out = subprocess.run([plugbox(), "doctor"], check=True, capture_output=True, text=True)
    assert "enforcement layers" in out.stdout
    assert "capability" in out.stdout


@pytest.mark.parametrize("args", [["--help"], ["doctor", "--help"]])
def test_help(args: list[str]) -> None:
    out = subprocess.run([plugbox(), *args], check=True, capture_output=True, text=True)
    assert "Usage" in out.stdout
