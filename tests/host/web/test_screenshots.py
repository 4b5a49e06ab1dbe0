"""The README's pictures of the admin page, taken in Chromium from a host with a realistic day.

Writes PNGs to a temporary folder, or to ``docs/img/`` when ``PLUGBOX_SCREENSHOTS=1``
(``scripts/screenshots`` does that), so the committed pictures come from the page as it is.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.host.web.conftest import Site, serve_site, sign_in
from tests.host.web.test_admin_page import api, finished_run

if TYPE_CHECKING:
    from playwright.sync_api import Page

DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"


@pytest.fixture(scope="module")
def showcase(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A host after some work: successes, a failure, a refused file, a paused job."""
    # hello-cron keeps its own schedule here: the picture should show what an operator sees.
    root = tmp_path_factory.mktemp("showcase")
    for site in serve_site(root, markup=False, hello_schedule=None):
        for job in ("example:hello-cron", "webtest:nosy", "example:hello-cron", "webtest:flaky"):
            finished_run(site, job)
        api(site, "POST", "/jobs/webtest:nap/pause")
        yield site


def size(png: Path) -> tuple[int, int]:
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_screenshots_of_the_jobs_page_and_a_run_page(
    page: Page, showcase: Site, tmp_path: Path
) -> None:
    folder = DOCS_IMG if os.environ.get("PLUGBOX_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    sign_in(page, showcase)
    page.locator('tr[data-job="webtest:flaky"] .badge', has_text="failed").wait_for()
    page.screenshot(path=folder / "admin-jobs.png", full_page=True)

    nosy = api(showcase, "GET", "/runs", job="webtest:nosy")["runs"][0]
    page.goto(f"{showcase.url}/ui/runs/{nosy['run_id']}")
    page.locator("section.panel", has_text="secrets/api.key").wait_for()
    page.screenshot(path=folder / "admin-run.png", full_page=True)

    for name in ("admin-jobs.png", "admin-run.png"):
        width, height = size(folder / name)
        assert width == 1360 and height >= 600, (name, width, height)
