"""The pytest plugin (entry point ``pytest11``): fixtures for testing plugbox jobs.

* ``plugbox`` — a :class:`~plugbox.sdk.testing.Harness` on a fresh temporary workspace;
* ``plugbox_runner`` — the one :class:`~plugbox.sandbox.SandboxRunner` a session shares, started
  on the first sandboxed run (a session that never runs a job never starts it);
* ``--plugbox-in-process`` — every harness runs in debug mode, so a breakpoint in a job stops.

pytest imports this module in every session of an environment where plugbox-sdk is installed,
including ones without the ``testing`` extra, so it imports nothing from plugbox.sandbox itself:
the fixtures import the harness when a test first asks for one, and say what to install if the
sandbox is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from plugbox.sdk.testing._sandbox import SandboxRunner
    from plugbox.sdk.testing.harness import Harness

IN_PROCESS_OPTION = "--plugbox-in-process"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plugbox", "plugbox job testing")
    group.addoption(
        IN_PROCESS_OPTION,
        action="store_true",
        default=False,
        help="run every plugbox harness job in the test process (debug mode: breakpoints work, "
        "calls are still checked, but nothing is confined)",
    )


def _harness_module() -> ModuleType:
    try:
        from plugbox.sdk.testing import harness
    except ModuleNotFoundError as err:
        if (err.name or "").startswith("plugbox.sandbox"):
            pytest.fail(str(err), pytrace=False)
        raise
    return harness


@pytest.fixture(scope="session")
def plugbox_runner() -> Iterator[SandboxRunner]:
    """One sandbox runner for the session: a warm zygote every ``plugbox`` fixture shares."""
    # Every test has its own workspace, so a child pre-forked for the next run would go unused.
    runner: SandboxRunner = _harness_module().SandboxRunner(prewarm=False)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def plugbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A harness whose workspace is a fresh ``tmp_path / "workspace"``.

    Runs go to the session's sandbox runner, or in-process under ``--plugbox-in-process``.
    """
    module = _harness_module()
    in_process = bool(request.config.getoption(IN_PROCESS_OPTION))
    # Debug mode needs no sandbox: do not start one. A run that asks for the sandbox anyway
    # (in_process=False) gets a runner of its own, closed with the harness.
    runner = None if in_process else request.getfixturevalue("plugbox_runner")
    harness: Harness = module.Harness(tmp_path / "workspace", runner=runner, in_process=in_process)
    with harness:
        yield harness
