"""The admin page as an operator uses it: in Chromium, against a real ``plugbox serve``."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.host.web.conftest import MARKUP, Site, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[3]


def api(site: Site, method: str, path: str, scope: str = "admin", **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {site.tokens[scope]}"}
    with httpx.Client(base_url=site.url, headers=headers, timeout=120) as client:
        response = client.request(method, path, params=params)
    assert response.status_code < 300, response.text
    return response.json()


def finished_run(site: Site, job: str) -> dict[str, Any]:
    """Trigger ``job`` through the API and wait for its outcome."""
    record = api(site, "POST", f"/jobs/{job}/trigger", wait="true", timeout=90)
    assert record["status"] not in ("queued", "running"), record
    return record  # type: ignore[no-any-return]


def test_the_shell_holds_no_data_and_fragments_need_a_token(site: Site) -> None:
    shell = httpx.get(site.url + "/")
    assert shell.status_code == 200
    csp = shell.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "hello-cron" not in shell.text  # no job data without a token
    assert 'src="/ui/static/admin.js"' in shell.text
    assert "<script>" not in shell.text  # no inline script at all

    anonymous = httpx.get(site.url + "/ui/part/jobs")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "UNAUTHORIZED"
    for asset in ("admin.js", "admin.css", "favicon.svg"):
        assert httpx.get(f"{site.url}/ui/static/{asset}").status_code == 200
    # The page is not part of the API's contract: schemathesis should not probe it.
    paths = httpx.get(site.url + "/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_a_triggered_run_appears_with_its_status_without_a_reload(page: Page, site: Site) -> None:
    sign_in(page, site)
    page.evaluate("window.__sameDocument = true")
    row = page.locator('tr[data-job="example:hello-cron"]')
    row.get_by_role("button", name="Run now").click()

    toast = page.locator("a.toast", has_text="queued")
    toast.wait_for()
    run_id = (toast.get_attribute("href") or "").rsplit("/", 1)[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", run_id), run_id
    # The recent-runs table picks the run up by polling, then its final status.
    page.locator(f'tr[data-run="{run_id}"][data-status="success"]').wait_for()
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert page.locator(f'tr[data-run="{run_id}"]').inner_text().count("manual") == 1
    record = api(site, "GET", f"/runs/{run_id}")
    assert record["requested_by"] == "admin-bot"
    assert row.locator(".badge").first.inner_text() == "enabled"

    # A run started elsewhere (here: the API) shows up too: the page polls.
    elsewhere = api(site, "POST", "/jobs/example:hello-cron/trigger")["run_id"]
    page.locator(f'tr[data-run="{elsewhere}"]').wait_for()
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"


def test_pause_and_resume_change_the_shown_state(page: Page, site: Site) -> None:
    sign_in(page, site)
    row = 'tr[data-job="webtest:nosy"]'
    page.locator(row).get_by_role("button", name="Pause").click()
    page.locator(f'{row}[data-state="paused"]').wait_for()
    assert api(site, "GET", "/jobs/webtest:nosy")["pause"]["changed_by"] == "admin-bot"
    assert "paused" in page.locator(f"{row} td").nth(3).inner_text()  # no next run while paused

    page.locator(row).get_by_role("button", name="Resume").click()
    page.locator(f'{row}[data-state="enabled"]').wait_for()
    assert api(site, "GET", "/jobs/webtest:nosy")["paused"] is False


def test_a_run_page_shows_log_events_result_and_enforcement(page: Page, site: Site) -> None:
    record = finished_run(site, "example:hello-cron")
    sign_in(page, site, f"/ui/runs/{record['run_id']}")
    content = page.locator("#content")
    text = content.inner_text()
    assert "said hello" in text  # log
    assert "hello.said" in text  # event
    assert '"ok": true' in text  # result
    levels = {
        k: v for k, v in record["enforcement"].items() if v in ("kernel", "best-effort", "advisory")
    }
    assert levels, record["enforcement"]
    for capability, level in levels.items():
        pill = content.locator(".level", has=page.locator(".level-key", has_text=capability))
        assert pill.locator(".level-val").inner_text() == level
    assert "Denied calls" in text and "None: every call the job made was allowed." in text
    # Relative times carry the exact time on hover.
    started = content.locator("dl.facts time").nth(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", started.get_attribute("title") or "")


def test_a_run_page_shows_denials_and_errors(page: Page, site: Site) -> None:
    nosy = finished_run(site, "webtest:nosy")
    assert nosy["status"] == "success" and nosy["denials"], nosy
    sign_in(page, site, f"/ui/runs/{nosy['run_id']}")
    denials = page.locator("section.panel", has_text="Denied calls")
    assert "secrets/api.key" in denials.inner_text()

    flaky = finished_run(site, "webtest:flaky")
    assert flaky["status"] == "failed"
    page.goto(f"{site.url}/ui/runs/{flaky['run_id']}")
    error = page.locator("section.panel.bad", has_text="Error")
    error.wait_for()
    assert "RuntimeError: upstream API answered 503" in error.inner_text()
    assert "Traceback" in error.locator("pre").inner_text()
    assert page.locator(".page-head .badge").inner_text() == "failed"


def test_a_running_run_is_cancelled_from_its_page(page: Page, site: Site) -> None:
    queued = api(site, "POST", "/jobs/webtest:nap/trigger")
    sign_in(page, site, f"/ui/runs/{queued['run_id']}")
    page.locator(".page-head .badge", has_text="running").wait_for()
    page.get_by_role("button", name="Cancel run").click()
    page.locator(".page-head .badge", has_text="cancelled").wait_for()
    assert "Cancelled by" in page.locator("#content").inner_text()
    assert api(site, "GET", f"/runs/{queued['run_id']}")["cancelled_by"] == "admin-bot"


def test_a_job_page_has_statistics_next_fires_and_history(page: Page, site: Site) -> None:
    record = finished_run(site, "webtest:flaky")
    job = api(site, "GET", "/jobs/webtest:flaky")
    sign_in(page, site, "/ui/jobs/webtest%3Aflaky")
    content = page.locator("#content")
    assert content.locator("h1").inner_text() == "webtest:flaky"
    assert content.locator("ol.fires li").count() == 5
    assert job["schedule_words"] in content.inner_text()
    assert content.locator(f'tr[data-run="{record["run_id"]}"]').count() == 1
    stats = next(s for s in api(site, "GET", "/jobs/stats")["jobs"] if s["job"] == "webtest:flaky")
    numbers = content.locator(".stat-num").all_inner_texts()
    assert numbers[:3] == [str(stats["total"]), "0", str(stats["counts"]["failed"])]
    assert "0 %" in content.locator(".rate-num").inner_text()


def test_a_wrong_token_is_refused_with_a_clear_message(page: Page, site: Site) -> None:
    page.goto(site.url + "/")
    page.fill("#token", "pbx_not-a-token-this-host-made")
    page.click("#token-form button[type=submit]")
    problem = page.locator("#problem")
    problem.wait_for()
    assert "The token was refused" in problem.inner_text()
    assert "not known" in problem.inner_text()
    assert page.locator("#signin").is_visible()
    assert page.evaluate("sessionStorage.length") == 0  # a refused token is not kept


def test_the_token_stays_in_the_tab_and_never_in_urls_or_cookies(page: Page, site: Site) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, site)
    token = site.tokens["admin"]
    assert page.evaluate("sessionStorage.getItem('plugbox.token')") == token
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert requests and not [url for url in requests if token in url]

    page.get_by_role("button", name="Forget token").click()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#signin").is_visible()


def test_a_read_token_sees_everything_and_the_buttons_say_why_not(page: Page, site: Site) -> None:
    sign_in(page, site, scope="read")
    run_now = page.locator('tr[data-job="example:hello-cron"]').get_by_role(
        "button", name="Run now"
    )
    assert run_now.is_disabled()
    assert run_now.get_attribute("title") == "needs a token with the trigger scope"
    assert page.locator("#who").inner_text() == "read-bot (read)"


def test_job_text_that_is_markup_renders_inert(page: Page, site: Site) -> None:
    record = finished_run(site, "webtest:markup")
    sign_in(page, site)
    for path in ("/", "/ui/jobs/webtest:markup", f"/ui/runs/{record['run_id']}", "/ui/plugins"):
        page.goto(site.url + path)  # the token is kept for the tab
        page.wait_for_selector("#content:not([hidden]) .page-head")
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("#content img").count() == 0, path
    # The text is shown as text: what the author wrote, character for character.
    page.goto(site.url + "/")
    page.locator('tr[data-job="webtest:markup"]').wait_for()
    assert MARKUP in page.locator('tr[data-job="webtest:markup"] .desc').inner_text()
    assert page.locator('tr[data-job="webtest:markup"] .tag').inner_text() == "<b>bold</b>"


def test_the_plugins_page_shows_permissions_and_what_the_kernel_enforces(
    page: Page, site: Site
) -> None:
    sign_in(page, site, "/ui/plugins")
    levels = api(site, "GET", "/plugins/example")["enforcement"]
    panel = page.locator("section.panel", has_text="What this machine enforces")
    for capability, level in levels.items():
        pill = panel.locator(".level", has=page.locator(".level-key", has_text=capability))
        assert pill.first.locator(".level-val").inner_text() == level
    example = page.locator("#plugin-example")
    assert ".plugbox/example" in example.inner_text()
    assert "timeout_ms" in example.inner_text()


@pytest.mark.slow
def test_the_host_wheel_ships_templates_and_assets(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--wheel-dir", str(tmp_path), str(ROOT / "host")],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("plugbox_host-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    web = ROOT / "host" / "src" / "plugbox" / "host" / "web"
    shipped = {
        f"plugbox/host/web/{path.relative_to(web).as_posix()}"
        for folder in ("templates", "static")
        for path in (web / folder).iterdir()
    }
    assert shipped and shipped <= names, sorted(shipped - names)


def test_an_unknown_job_says_so(page: Page, site: Site) -> None:
    sign_in(page, site, "/ui/plugins")
    page.goto(site.url + "/ui/jobs/webtest:no-such-job")
    problem = page.locator("#problem")
    problem.wait_for()
    assert "has no job 'no-such-job'" in problem.inner_text()
    assert page.locator("#content").is_hidden()


def test_a_host_that_stops_answering_is_reported_and_the_page_recovers(
    page: Page, site: Site
) -> None:
    sign_in(page, site)
    page.route("**/ui/part/**", lambda route: route.abort())
    problem = page.locator("#problem", has_text="Cannot reach the plugbox host")
    problem.wait_for()
    assert "on" not in (page.locator("#live").get_attribute("class") or "").split()

    page.unroute("**/ui/part/**")
    problem.wait_for(state="hidden")
    page.locator("#live.on").wait_for()


FRAGMENTS = {
    "/ui/part/jobs": 200,
    "/ui/part/plugins": 200,
    "/ui/part/jobs/example:hello-cron": 200,
    "/ui/part/runs/no-such-run": 404,
}


def test_every_fragment_needs_a_read_token(site: Site) -> None:
    from plugbox.host.web.pages import router

    served = {route.path for route in router.routes if route.path.startswith("/ui/part")}
    assert served == {
        "/ui/part/jobs",
        "/ui/part/plugins",
        "/ui/part/jobs/{job_id}",
        "/ui/part/runs/{run_id}",
    }
    for path, status in FRAGMENTS.items():
        for token in (None, "pbx_not-a-token"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = httpx.get(site.url + path, headers=headers)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["code"] == "UNAUTHORIZED"
        answer = httpx.get(
            site.url + path, headers={"Authorization": f"Bearer {site.tokens['read']}"}
        )
        assert answer.status_code == status, (path, answer.text)
        if status == 200:
            assert answer.headers["content-security-policy"].startswith("default-src 'none'")
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-plugbox-token"] == "read-bot (read)"
        else:
            assert answer.json()["code"] == "RUN_NOT_FOUND"
