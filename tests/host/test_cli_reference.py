"""docs/cli.md is generated from the click app and must match it: a stale page fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from plugbox.host.cli_reference import REGENERATE, render

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli.md"

# The commands PRODUCT.md fixes; each must have its own section, lazy views included.
FIXED = [
    "plugbox serve",
    "plugbox tokens create",
    "plugbox tokens list",
    "plugbox tokens revoke",
    "plugbox plugins list",
    "plugbox plugins inspect",
    "plugbox jobs list",
    "plugbox jobs next",
    "plugbox jobs run",
    "plugbox jobs pause",
    "plugbox jobs resume",
    "plugbox runs list",
    "plugbox runs show",
    "plugbox doctor",
    "plugbox new",
]


def test_docs_cli_md_is_up_to_date() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        f"docs/cli.md is out of date with the CLI; regenerate it: {REGENERATE}"
    )


def test_every_fixed_command_has_a_section() -> None:
    headings = set(re.findall(r"^#+ `(plugbox[^`]*)`$", render(), flags=re.MULTILINE))
    assert set(FIXED) <= headings, sorted(set(FIXED) - headings)


def test_check_mode_fails_on_a_stale_page_and_says_how_to_fix_it(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(render().replace("Show the next", "Show the last"), encoding="utf-8")
    command = [sys.executable, "-m", "plugbox.host.cli_reference", "--check", str(stale)]
    failed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert failed.returncode == 1
    assert REGENERATE in failed.stderr
    written = subprocess.run([*command[:3], str(stale)], check=False, cwd=ROOT)
    assert written.returncode == 0
    assert subprocess.run(command, check=False, cwd=ROOT).returncode == 0
