"""Discovery end to end: real distributions, real confined children, the host never imports them."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy
import pytest

from plugbox.host.discovery import (
    DiscoveryReport,
    PluginProblem,
    discover,
    list_entry_points,
)
from plugbox.sandbox import SandboxRunner
from plugbox.sdk import __version__ as sdk_version

HANG_TIMEOUT_S = 2.0
#: The `new_site` fixture (conftest.py): makes a fresh site-packages-like directory.
NewSite = Callable[[], Any]


def problem(report: DiscoveryReport, dist: str) -> PluginProblem:
    found = [p for p in report.problems if p.entry_point.dist == dist]
    assert len(found) == 1, report.problems
    return found[0]


def test_example_plugin_loads(runner: SandboxRunner, workspace: Path) -> None:
    report = discover(runner, workspace=workspace)

    example = report.plugin("example")
    assert example.entry_point.dist == "plugbox-example"
    assert example.entry_point.value == "plugbox_example.plugin"
    assert {job.id for job in example.manifest.jobs} >= {"hello-cron", "cleanup"}
    assert not [p for p in report.problems if p.entry_point.dist == "plugbox-example"]


@pytest.fixture(scope="module")
def mixed(
    runner: SandboxRunner, new_site: NewSite, workspace: Path
) -> tuple[DiscoveryReport, float]:
    """One discovery over a site holding good and broken plugins of every kind."""
    site = new_site()
    site.add_plugin("good-one", "good-one")
    site.add_plugin("good-two", "good-two")
    site.add(
        "raises",
        """
        raise RuntimeError("database driver missing")
        """,
    )
    site.add("exits", "import sys\nsys.exit(3)\n")
    site.add("vanishes", "import os\nos._exit(0)\n")
    site.add_plugin("hangs", "hangs", preamble="import time\ntime.sleep(600)\n")
    site.add_plugin("bad-schedule", "bad-schedule", schedule="61 * * * *", extra='"colour": 1,')
    site.add(
        "bad-decorator",
        """
        from plugbox.sdk import define_manifest, job

        @job("tick", schedule="* * * *")
        def tick(ctx):
            return None

        manifest = define_manifest(id="bad-decorator", version="1.0", name="x", jobs=[tick])
        """,
    )
    site.add_plugin("clash-a", "shared-id")
    site.add_plugin("clash-b", "shared-id")
    site.add_plugin("future-sdk", "future-sdk", sdk=">=9")
    site.add_plugin(
        "dup-jobs",
        "dup-jobs",
        extra='"jobs": [{"id": "a", "handler": "x:a"}, {"id": "a", "handler": "x:b"}],',
    )
    site.add(
        "no-hook",
        "from plugbox.sdk import hookimpl\n\n@hookimpl\ndef plugbox_manifests():\n    pass\n",
    )
    start = time.monotonic()
    report = discover(
        runner, workspace=workspace, timeout_s=HANG_TIMEOUT_S, extra_paths=(str(site.root),)
    )
    return report, time.monotonic() - start


def test_good_plugins_load_beside_broken_ones(mixed: tuple[DiscoveryReport, float]) -> None:
    report, _ = mixed
    assert sorted(p.manifest.id for p in report.plugins) == ["example", "good-one", "good-two"]
    assert report.plugin("good-one").entry_point.dist_version == "1.0"
    broken = {p.entry_point.dist for p in report.problems}
    assert broken == {
        "raises",
        "exits",
        "vanishes",
        "hangs",
        "bad-schedule",
        "bad-decorator",
        "clash-a",
        "clash-b",
        "future-sdk",
        "dup-jobs",
        "no-hook",
    }


def test_import_error_is_reported_with_the_exception(mixed: tuple[DiscoveryReport, float]) -> None:
    raised = problem(mixed[0], "raises")
    assert raised.kind == "load"
    assert raised.reason == "importing it failed: RuntimeError: database driver missing"
    assert "pbt_raises.py" in raised.detail  # the traceback points at the plugin's own line
    assert str(raised).startswith("plugin raises 1.0 (entry point 'raises'): importing it failed")

    exited = problem(mixed[0], "exits")
    assert exited.kind == "load"
    assert "SystemExit: 3" in exited.reason


def test_child_that_dies_while_importing_is_reported(
    mixed: tuple[DiscoveryReport, float],
) -> None:
    gone = problem(mixed[0], "vanishes")
    assert gone.kind == "crashed"
    assert gone.reason.startswith("the discovery child ended without an answer while importing it")
    assert "exited with status 0 before returning a result" in gone.reason


def test_hanging_import_is_cut_at_the_timeout(mixed: tuple[DiscoveryReport, float]) -> None:
    report, elapsed = mixed
    hung = problem(report, "hangs")
    assert hung.kind == "timeout"
    assert hung.reason == "timed out after 2 s while importing it or building its manifest"
    # The plugins are resolved side by side: the hang costs its own timeout, not the others'.
    assert elapsed < HANG_TIMEOUT_S + 5


def test_invalid_manifest_lists_every_located_problem(mixed: tuple[DiscoveryReport, float]) -> None:
    invalid = problem(mixed[0], "bad-schedule")
    assert invalid.kind == "invalid"
    assert invalid.reason.startswith("invalid manifest, 2 problems:")
    assert "jobs[0].schedule: " in invalid.reason
    assert "minute 61 is outside 0-59" in invalid.reason
    assert "colour: unknown key" in invalid.reason

    # define_manifest/@job validate at import in the child; the located problem still arrives.
    decorated = problem(mixed[0], "bad-decorator")
    assert decorated.kind == "load"
    assert decorated.reason.startswith("importing it failed: ManifestError: 1 problem")
    assert "jobs[0].schedule: " in decorated.reason


def test_duplicate_job_ids_are_named(mixed: tuple[DiscoveryReport, float]) -> None:
    dup = problem(mixed[0], "dup-jobs")
    assert dup.kind == "invalid"
    assert "jobs[1].id: job id 'a' is already used by jobs[0]" in dup.reason


def test_plugin_id_clash_names_both_distributions(mixed: tuple[DiscoveryReport, float]) -> None:
    a, b = problem(mixed[0], "clash-a"), problem(mixed[0], "clash-b")
    assert a.kind == b.kind == "clash"
    assert "plugin id 'shared-id' is also declared by plugin clash-b 1.0" in a.reason
    assert "plugin id 'shared-id' is also declared by plugin clash-a 1.0" in b.reason
    with pytest.raises(LookupError, match="no plugin 'shared-id' is loaded"):
        mixed[0].plugin("shared-id")


def test_sdk_range_mismatch(mixed: tuple[DiscoveryReport, float]) -> None:
    future = problem(mixed[0], "future-sdk")
    assert future.kind == "sdk"
    assert future.reason == f"needs plugbox-sdk >=9, this host has {sdk_version}"


def test_misspelt_hook_is_named(mixed: tuple[DiscoveryReport, float]) -> None:
    no_hook = problem(mixed[0], "no-hook")
    assert no_hook.kind == "load"
    assert no_hook.reason.startswith("its plugbox_manifest hook failed: PluginValidationError")
    assert "plugbox_manifests" in no_hook.reason


PROBE = """
    import json, os, sys, types
    from pathlib import Path

    try:
        Path({markers!r}, f"ran-in-pid-{{os.getpid()}}").write_text("imported")
        wrote = "written"
    except OSError as exc:
        wrote = f"blocked: {{type(exc).__name__}}"
    os.environ["PBT_PROBE_RAN"] = "1"
    registry = sys.modules.setdefault("pbt_probe_registry", types.ModuleType("pbt_probe_registry"))
    registry.__dict__.setdefault("hits", []).append(os.getpid())
    DESCRIPTION = json.dumps({{"pid": os.getpid(), "write": wrote}})
"""


def test_plugin_import_time_code_never_runs_in_the_host(
    runner: SandboxRunner,
    new_site: NewSite,
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    site = new_site()
    module = site.add_plugin("probe", "probe", preamble=PROBE.format(markers=str(markers)))

    def refuse(*_: object, **__: object) -> None:
        pytest.fail("the host tried to import plugin code")

    # Every way the host could import a plugin fails the test (the children are other processes).
    monkeypatch.setattr(metadata.EntryPoint, "load", refuse)
    monkeypatch.setattr(pluggy.PluginManager, "load_setuptools_entrypoints", refuse)
    modules_before, path_before = set(sys.modules), list(sys.path)

    report = discover(runner, workspace=workspace, extra_paths=(str(site.root),))

    ran = json.loads(report.plugin("probe").manifest.description)
    assert ran["pid"] != os.getpid()  # it did run, elsewhere
    new_modules = set(sys.modules) - modules_before
    assert not {module, "pbt_probe_registry", "plugbox_example"} & new_modules
    assert "PBT_PROBE_RAN" not in os.environ
    assert sys.path == path_before
    assert list(markers.iterdir()) == []
    if runner.machine.get("landlock_abi"):
        # Confined as promised: the import-time write was stopped by the kernel.
        assert ran["write"] == "blocked: PermissionError"


def test_listing_reads_metadata_only(new_site: NewSite) -> None:
    site = new_site()
    module = site.add("listed", "raise SystemExit('imported!')\n", entry_point="listed-ep")

    found = [e for e in list_entry_points((str(site.root),)) if e.dist == "listed"]

    assert [(e.name, e.value, e.dist_version) for e in found] == [("listed-ep", module, "1.0")]
    assert module not in sys.modules


def test_no_plugins_installed_is_an_empty_report(
    runner: SandboxRunner, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [])
    assert discover(runner, workspace=workspace) == DiscoveryReport((), ())
