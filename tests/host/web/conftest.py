"""The admin page in a real headless Chromium, against a real ``plugbox serve``.

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it), driven by Playwright with
``executable_path``: Playwright's own browser download cannot work offline and is never used.
Without Chromium these tests fail under CI (``CI=true``) and skip elsewhere, saying why.

Besides the example plugin (installed in the test environment), a ``webtest`` plugin brings a
job whose text is markup (to prove it renders inert), one that fails, one that is refused a
file, and one that naps long enough to be cancelled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.host.api.conftest import Served, _install, start_serve, token_per_scope

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
#: The network is closed here: without these, Chromium keeps dialling out (updates, sync, QUIC)
#: and floods the log with refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Every wait in these tests is on a condition, bounded by this (the page polls every 2 s).
WAIT_MS = 30_000

MARKUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
WEBTEST = """
import time

from plugbox.sdk import define_manifest, hookimpl, job
from plugbox.sdk import permissions as perms


@job("markup", description={markup_text!r}, tags=["<b>bold</b>"])
def markup(ctx):
    ctx.logger.info({markup_text!r})
    return {{"html": {markup_text!r}}}


@job("flaky", schedule="0 */6 * * *", description="Calls an upstream API that is down today")
def flaky(ctx):
    ctx.logger.warning("upstream answered 503, giving up")
    raise RuntimeError("upstream API answered 503 Service Unavailable")


@job(
    "nosy",
    schedule="*/30 * * * *",
    description="Reads its own notes, and tries a secret it was not granted",
    permissions=perms.presets.plugin_workspace("webtest"),
)
def nosy(ctx):
    fs = ctx.runtime.fs
    fs.mkdir(".plugbox/webtest", parents=True, exist_ok=True)
    fs.write_text(".plugbox/webtest/notes.txt", "hello")
    ctx.emit("notes.saved", {{"path": ".plugbox/webtest/notes.txt", "bytes": 5}})
    try:
        fs.read_text("secrets/api.key")
    except PermissionError:
        ctx.logger.info("secret refused, as it should be")
    return {{"notes": fs.read_text(".plugbox/webtest/notes.txt")}}


@job("nap", timeout="120s", description="Sleeps a minute (to be cancelled)")
def nap(ctx):
    time.sleep(60)


manifest = define_manifest(
    id="webtest",
    version="1.0",
    name="Web test",
    description="Jobs that show the admin page's every state",
    jobs=[markup, flaky, nosy, nap] if {markup} else [flaky, nosy, nap],
)


@hookimpl
def plugbox_manifest():
    return manifest
"""


#: Tests trigger example:hello-cron by hand; its own 5-minute schedule could fire meanwhile and
#: (concurrency=forbid) turn a manual run into a skipped one. Once a year cannot collide.
YEARLY = "0 4 1 1 *"


def write_config(root: Path, markup: bool = True, hello_schedule: str | None = YEARLY) -> Path:
    """A host with the example plugin and ``webtest`` (``markup``: with its markup job)."""
    (root / "ws" / "secrets").mkdir(parents=True)
    (root / "ws" / "secrets" / "api.key").write_text("s3cret")
    site = root / "site"
    source = WEBTEST.format(markup=markup, markup_text=MARKUP)
    _install(site, "webtest", "pbt_webtest", source)
    config = root / "plugbox.toml"
    config.write_text(
        f'plugin_paths = ["{site}"]\n'
        f'state_dir = "{root / "state"}"\n'
        f'workspace = "{root / "ws"}"\n'
        "workers = 2\n"
        'shutdown_grace = "1s"\n'
    )
    if hello_schedule is not None:
        with config.open("a") as out:
            out.write(f'\n[jobs."example:hello-cron"]\nschedule = "{hello_schedule}"\n')
    return config


@dataclass(frozen=True)
class Site:
    """A serving host and a token of each scope."""

    served: Served
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.served.url


def serve_site(root: Path, **config_args: Any) -> Iterator[Site]:
    config = write_config(root, **config_args)
    tokens = token_per_scope(config)
    served = start_serve(config)
    try:
        yield Site(served, tokens)
    finally:
        assert served.stop() == 0, "".join(served.stderr)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from serve_site(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the admin page tests need Chromium: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab in a fresh context: its own, empty sessionStorage."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
        assert not errors, f"the page's script failed: {errors}"
    finally:
        context.close()


def sign_in(page: Page, site: Site, path: str = "/", scope: str = "admin") -> None:
    """Open ``path`` and paste a token, as an operator does once per tab."""
    page.goto(site.url + path)
    page.fill("#token", site.tokens[scope])
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#content:not([hidden]) .page-head")
