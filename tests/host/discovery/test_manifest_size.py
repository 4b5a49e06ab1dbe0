"""A manifest larger than the host accepts is that plugin's load problem, and the others load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugbox.host.discovery import MAX_MANIFEST_BYTES, discover
from plugbox.sandbox import SandboxRunner


def test_an_oversized_manifest_is_refused_as_that_plugins_problem(
    runner: SandboxRunner, workspace: Path, new_site: Callable[[], Any]
) -> None:
    site = new_site()
    # Two jobs' config defaults of 300 KB each: every field is valid, the whole is too big.
    big = "x" * 300_000
    site.add_plugin(
        "plugbox-huge",
        "huge",
        extra=f'"jobs": [{{"id": "a", "handler": "x:a", "config": {{"blob": {big!r}}}}},'
        f' {{"id": "b", "handler": "x:b", "config": {{"blob": {big!r}}}}}],',
    )
    site.add_plugin("plugbox-small", "small")
    report = discover(runner, workspace=workspace, extra_paths=[str(site.root)])

    assert [p.manifest.id for p in report.plugins if p.manifest.id in {"huge", "small"}] == [
        "small"
    ]
    (problem,) = [p for p in report.problems if p.entry_point.dist == "plugbox-huge"]
    assert problem.kind == "invalid", problem
    assert f"at most {MAX_MANIFEST_BYTES:,} bytes" in problem.reason
    assert "600," in problem.reason  # the size it had, so the author knows how far off it is
