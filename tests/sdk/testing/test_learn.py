"""Learn mode through the harness: one run tells an author what to declare and what to drop."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import FakeHttp, Harness, LearnReport

JOBS_DIR = Path(__file__).parent / "jobs"


def _harness(tmp_path: Path, in_process: bool) -> Harness:
    http = FakeHttp()
    http.add("GET", "https://api.example.com/items", json=[1, 2, 3])
    http.add("POST", "https://hooks.example.org/done", status=204)
    return Harness(tmp_path / "ws", in_process=in_process, http=http)


def test_learn_reports_the_smallest_set_and_what_is_missing_or_unused(
    learn_jobs: ModuleType, tmp_path: Path, in_process: bool
) -> None:
    with _harness(tmp_path, in_process) as harness:
        plain = harness.run(learn_jobs.sync, env={"SYNC_TOKEN": "t"})
        assert plain.status == "failed"  # the declared set refuses the env read

        report = harness.learn(learn_jobs.sync, env={"SYNC_TOKEN": "t", "HOME": "/root"})
        assert isinstance(report, LearnReport)
        assert report.run.ok, report.run.error
        assert report.run.result == {"items": 3, "token_seen": True}
        assert report.permissions == perms.Permissions(
            fs=perms.FsPermissions(mode="readWrite", allow=["/exports/"]),
            net=perms.NetPermissions(allow_hosts=["api.example.com:443", "hooks.example.org:443"]),
            env=perms.EnvPermissions(allow=["SYNC_TOKEN"]),
        )
        assert [(m.operation, m.target) for m in report.missing] == [
            ("env.read", "SYNC_TOKEN"),
            ("net.connect", "hooks.example.org:443"),
        ]
        assert report.unused == ("fs[0].allow[1] '/old-cache/'",)

        text = report.render()
        assert "perms.EnvPermissions(allow=['SYNC_TOKEN'])" in text
        assert "env.read 'SYNC_TOKEN', refused by default deny" in text
        assert "fs[0].allow[1] '/old-cache/'" in text

        # The proposal is enough: the job passes with it and nothing is refused.
        rerun = harness.run(
            learn_jobs.sync, env={"SYNC_TOKEN": "t"}, permissions=report.permissions
        )
        assert rerun.ok, rerun.error
        assert rerun.denials == ()


def test_a_learn_run_still_cannot_read_outside_the_workspace(
    learn_jobs: ModuleType, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    with _harness(tmp_path, in_process=False) as harness:
        report = harness.learn(learn_jobs.escape, config={"path": str(outside)})
    assert report.run.result == {"stopped": 13}  # EACCES from Landlock, not the proxies
