"""A job's code must be importable by name in the sandbox child; where it is not, say what to do."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from plugbox.sdk import JobContext, job
from plugbox.sdk.testing import Harness, JobImportError
from plugbox.sdk.testing.code_path import code_path

ADVICE = "put the job in your plugin package"


def test_a_job_defined_inside_a_test_is_refused(plugbox: Harness) -> None:
    @job("local")
    def local(ctx: JobContext) -> None:
        pass

    with pytest.raises(JobImportError, match="it is defined inside a function") as raised:
        plugbox.run(local)
    assert ADVICE in str(raised.value)


def test_a_module_loaded_under_a_name_its_path_does_not_give_is_refused(
    plugbox: Harness, jobs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What pytest's importlib mode does to a test module it cannot import by name.
    spec = importlib.util.spec_from_file_location("renamed_jobs", jobs.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "renamed_jobs", module)
    spec.loader.exec_module(module)
    with pytest.raises(JobImportError, match="a path that name does not lead to") as raised:
        plugbox.run(module.clock)
    assert "'renamed_jobs:clock'" in str(raised.value)
    assert ADVICE in str(raised.value)


def test_code_that_holds_the_workspace_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "project"
    (code / "holder_pkg").mkdir(parents=True)
    (code / "holder_pkg" / "__init__.py").write_text(
        "from plugbox.sdk import job\n\n@job('j')\ndef j(ctx):\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.delitem(sys.modules, "holder_pkg", raising=False)
    module = importlib.import_module("holder_pkg")
    try:
        with (
            Harness(code / "workspace", in_process=True) as harness,
            pytest.raises(JobImportError, match="contains the workspace"),
        ):
            harness.run(module.j)
        # Next to it (not inside it), the same code runs, from its package's directory.
        with Harness(tmp_path / "elsewhere", in_process=True) as harness:
            assert harness.request(module.j).python_path == (str(code),)
            assert harness.run(module.j).result == 1
    finally:
        sys.modules.pop("holder_pkg", None)


def test_installed_code_needs_no_extra_path(tmp_path: Path) -> None:
    assert code_path("pluggy:HookimplMarker", tmp_path) == ()
    # An editable install's src/ is on this interpreter's path through a .pth file; sending it
    # along is harmless and keeps working where an import hook, not sys.path, finds the code.
    import plugbox_example

    src = Path(plugbox_example.__file__).parents[1]
    assert code_path("plugbox_example.jobs:hello", tmp_path) == (str(src),)
