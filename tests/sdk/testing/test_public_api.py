"""The testing surface authors import, and the promise that importing it stays cheap.

``plugbox.sdk.testing`` is imported by pytest in every session (the plugin lives in it), so
neither the package nor the plugin module may import plugbox.sandbox until a name is used.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import plugbox.sdk.testing

EXPORTED = {
    "FakeHttp",
    "Harness",
    "JobImportError",
    "LearnReport",
    "NoFakeResponseError",
    "PreviewFire",
    "RunError",
    "RunResult",
    "SchedulePreview",
    "assert_allowed",
    "assert_denied",
    "preview_schedule",
}


def test_every_name_is_exported_and_resolves() -> None:
    assert set(plugbox.sdk.testing.__all__) == EXPORTED
    for name in plugbox.sdk.testing.__all__:
        assert getattr(plugbox.sdk.testing, name) is not None, name
    assert set(dir(plugbox.sdk.testing)) == EXPORTED


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        plugbox.sdk.testing.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_plugin_imports_no_sandbox() -> None:
    code = textwrap.dedent(
        """
        import sys
        import plugbox.sdk.testing
        import plugbox.sdk.testing.pytest_plugin
        loaded = sorted(m for m in sys.modules if m.startswith(("plugbox.sandbox", "psutil")))
        print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
