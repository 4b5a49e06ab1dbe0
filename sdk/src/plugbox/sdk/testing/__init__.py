"""plugbox.sdk.testing — test plugbox jobs with pytest, no host needed (``plugbox-sdk[testing]``).

* :class:`Harness` runs a job as the host would — in the real sandbox, or in-process for a
  debugger — in a workspace the test owns, with config, env, grants and clock facts it chooses,
  and returns a :class:`RunResult` (status, result, error, log, events, accesses, denials);
* :class:`FakeHttp` answers the job's HTTP requests that the permissions allow;
* :func:`assert_denied` / :func:`assert_allowed` check a verdict and show the deciding rule;
* :meth:`Harness.learn` runs a job once with recording on and proposes the smallest permission
  set it needs (a :class:`LearnReport`);
* :func:`preview_schedule` shows what the host does with a job's fires over simulated time;
* the pytest plugin (:mod:`plugbox.sdk.testing.pytest_plugin`) provides the ``plugbox`` fixture.

Names load on first use (PEP 562): pytest imports the plugin module — and so this package — in
every session, including where only plugbox-sdk is installed, so importing the package must not
import plugbox.sandbox. ``tests/sdk/testing/test_public_api.py`` pins this list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugbox.sdk._lazy import lazy_exports

if TYPE_CHECKING:
    from plugbox.sdk.schedule_preview import PreviewFire, SchedulePreview, preview_schedule
    from plugbox.sdk.testing.asserts import assert_allowed, assert_denied
    from plugbox.sdk.testing.code_path import JobImportError
    from plugbox.sdk.testing.fake_http import FakeHttp, NoFakeResponseError
    from plugbox.sdk.testing.harness import Harness
    from plugbox.sdk.testing.learning import LearnReport
    from plugbox.sdk.testing.result import RunError, RunResult

_EXPORTS = {
    "FakeHttp": "plugbox.sdk.testing.fake_http",
    "Harness": "plugbox.sdk.testing.harness",
    "JobImportError": "plugbox.sdk.testing.code_path",
    "LearnReport": "plugbox.sdk.testing.learning",
    "NoFakeResponseError": "plugbox.sdk.testing.fake_http",
    "PreviewFire": "plugbox.sdk.schedule_preview",
    "RunError": "plugbox.sdk.testing.result",
    "RunResult": "plugbox.sdk.testing.result",
    "SchedulePreview": "plugbox.sdk.schedule_preview",
    "assert_allowed": "plugbox.sdk.testing.asserts",
    "assert_denied": "plugbox.sdk.testing.asserts",
    "preview_schedule": "plugbox.sdk.schedule_preview",
}

__all__ = [
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
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
