"""More jobs than one page of ``GET /jobs``: the pages hold every job once, and the admin page,
which lists jobs itself, still shows every one of them (none dropped past the first page)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.host.api.conftest import Api, _install, cli, start_serve

JOBS = 150  # more than GET /jobs's default page of 100


def many_jobs_source() -> str:
    lines = ["from plugbox.sdk import define_manifest, hookimpl, job", "", "JOBS = []"]
    for index in range(JOBS):
        # A function of its own per job: the SDK refuses one function as two jobs.
        lines += [
            "",
            f"@job('job{index:03d}', schedule='0 0 1 1 *')",
            f"def job{index}(ctx):",
            "    return {'ok': True}",
            "",
            f"JOBS.append(job{index})",
        ]
    lines += [
        "manifest = define_manifest(id='many', version='1.0', name='Many', jobs=JOBS)",
        "",
        "@hookimpl",
        "def plugbox_manifest():",
        "    return manifest",
        "",
    ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("many")
    (root / "ws").mkdir()
    _install(root / "site", "many", "pbt_many", many_jobs_source())
    config = root / "plugbox.toml"
    config.write_text(
        f'plugin_paths = ["{root / "site"}"]\nstate_dir = "{root / "state"}"\n'
        f'workspace = "{root / "ws"}"\nworkers = 1\n'
    )
    token = cli(config, "tokens", "create", "reader", "--scopes", "read").stdout.strip()
    served = start_serve(config)
    try:
        yield Api(served, {"read": token})
    finally:
        assert served.stop() == 0, "".join(served.stderr)


def expected() -> list[str]:
    return [f"many:job{index:03d}" for index in range(JOBS)]


def test_job_pages_hold_every_job_once(many: Api) -> None:
    with many.client("read") as client:
        first = client.get("/jobs").json()
        assert len(first["jobs"]) == 100 and first["next_cursor"] == "many:job099"
        rest = client.get("/jobs", params={"cursor": first["next_cursor"]}).json()
        assert rest["next_cursor"] is None
    ids = [job["id"] for job in first["jobs"] + rest["jobs"]]
    assert len(ids) == len(set(ids))
    # The example plugin of the environment may be listed too.
    assert [job for job in ids if job.startswith("many:")] == expected()


def test_the_admin_page_lists_jobs_past_the_first_page(many: Api) -> None:
    with many.client("read") as client:
        answer = client.get("/ui/part/jobs")
    assert answer.status_code == 200, answer.text
    missing = [job for job in expected() if job not in answer.text]
    assert not missing, f"the admin page leaves out {len(missing)} jobs, e.g. {missing[:3]}"
