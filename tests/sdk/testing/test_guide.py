"""The pytest plugin end to end: a plugin's own test suite, run by pytest in a fresh process.

The plugin and its tests are the examples of docs/testing.md, copied out of the page (each block
after a ``file PATH`` comment goes to PATH; blocks for the same file are joined), so the guide is
proven as written. pytest finds the ``plugbox`` fixture through the pytest11 entry point alone.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
FILE_COMMENT = re.compile(r"<!--\s*(?:not-run:\s*)?file:?\s+(?P<path>[\w./-]+?),?\s")
# Plugins this process has that a plugin author's would not; pytest-asyncio warns without config.
ISOLATED = ("-p", "no:asyncio", "-p", "no:cacheprovider")

FAILING_TEST = """
from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import assert_allowed

from acme_notes.plugin import write_note


def test_writes_need_a_writable_rule(plugbox):
    result = plugbox.run(write_note, permissions=perms.presets.read_workspace())
    assert_allowed(result, "fs.write", ".plugbox/acme-notes")
"""

MODE_TEST = """
from acme_notes.plugin import write_note


def test_the_mode_follows_the_option(plugbox, request):
    debug = request.config.getoption("--plugbox-in-process")
    assert plugbox.run(write_note).mode == ("debug" if debug else "sandbox")
"""

WITHOUT_SANDBOX = """
import sys


class NoSandbox:
    # As if only plugbox-sdk were installed: plugbox.sandbox cannot be imported.
    def find_spec(self, name, path=None, target=None):
        if name == "plugbox.sandbox" or name.startswith("plugbox.sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoSandbox())
"""


def guide_files() -> dict[str, str]:
    """Every file the guide spells out, by its path in the example project."""
    lines = GUIDE.read_text(encoding="utf-8").splitlines()
    files: dict[str, list[str]] = defaultdict(list)
    for index, line in enumerate(lines[:-1]):
        match = FILE_COMMENT.match(line.strip())
        if not match or not lines[index + 1].startswith("```"):
            continue
        end = lines.index("```", index + 2)
        files[match["path"]].append("\n".join(lines[index + 2 : end]))
    return {path: "\n\n\n".join(blocks) + "\n" for path, blocks in files.items()}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    files = guide_files()
    assert {"pyproject.toml", "src/acme_notes/plugin.py", "tests/test_notes.py"} <= set(files)
    for path, text in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (pytester.path / "src" / "acme_notes" / "__init__.py").write_text("")
    return pytester


def test_the_guide_suite_passes_in_the_sandbox_and_a_failure_shows_the_rule(
    project: pytest.Pytester,
) -> None:
    (project.path / "tests" / "test_failing.py").write_text(FAILING_TEST)
    (project.path / "tests" / "test_mode.py").write_text(MODE_TEST)
    result = project.runpytest_subprocess(*ISOLATED, "tests")
    result.assert_outcomes(passed=9, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected fs.write '.plugbox/acme-notes' to have been allowed in this run; "
            "it was denied by rule \"fs[[]0].allow[[]0] '[*][*]'\" (that rule set is read-only)",
            "*denials (1):",
        ]
    )


def test_the_learn_report_the_guide_shows_is_what_learn_prints(project: pytest.Pytester) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    shown = text.split("`print(report)` shows:\n\n```text\n", 1)[1].split("\n```", 1)[0]
    result = project.runpytest_subprocess(*ISOLATED, "-s", "-k", "learn", "tests")
    result.assert_outcomes(passed=1)
    printed = result.stdout.str()
    assert shown in printed, printed


def test_the_in_process_option_runs_every_job_in_debug_mode(project: pytest.Pytester) -> None:
    (project.path / "tests" / "test_mode.py").write_text(MODE_TEST)
    result = project.runpytest_subprocess(*ISOLATED, "--plugbox-in-process", "tests")
    result.assert_outcomes(passed=9)


def test_the_harness_works_without_pytest(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(project.path / "src"))  # as `pip install -e .` would
    result = project.run(sys.executable, "try_notes.py", timeout=120)
    assert result.ret == 0, result.stderr.str()
    assert result.stdout.lines == ["{'run': 2, 'attempt': 1}"]


def test_without_the_sandbox_pytest_starts_and_the_fixture_says_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(WITHOUT_SANDBOX)
    pytester.makepyfile(
        """
        def test_not_using_the_fixture():
            pass

        def test_using_it(plugbox):
            pass
        """
    )
    result = pytester.runpytest_subprocess(*ISOLATED)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(['*pip install "plugbox-sdk[[]testing]"*'])
