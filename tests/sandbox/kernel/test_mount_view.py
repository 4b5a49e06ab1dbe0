"""The zygote's private mount view: the run uid passes a folder it cannot search, nothing else moves.

A forked child (or a real zygote) enters the view over a scratch tree whose middle folder is 0700
and root's; then, as the run uid, it must reach the code beneath that folder, while the folder
stays unlistable, its other entries keep their own modes and the host sees no change at all.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from plugbox.sandbox import SandboxRunner, doctor
from plugbox.sandbox.kernel import capabilities, mount_view
from plugbox.sandbox.run_identity import RUN_ID, RunIdentity
from plugbox.sandbox.spawn_spec import code_paths

from .conftest import in_child

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the mount view is a root host's")

IDENTITY = RunIdentity(RUN_ID, RUN_ID)


@pytest.fixture
def closed() -> Iterator[Path]:
    """``scratch/closed`` (0700, root's) holding ``code/lib.py``, a 0600 secret, a link, a fifo."""
    scratch = Path(tempfile.mkdtemp(prefix="plugbox-mount-view-"))
    scratch.chmod(0o755)
    folder = scratch / "closed"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "lib.py").write_text("VALUE = 1\n")
    (folder / "secret.txt").write_text("root's\n")
    (folder / "secret.txt").chmod(0o600)
    (folder / "link").symlink_to("code")
    os.mkfifo(folder / "fifo")
    folder.chmod(0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _as_run_uid() -> None:
    os.setgroups([])
    os.setresgid(RUN_ID, RUN_ID, RUN_ID)
    os.setresuid(RUN_ID, RUN_ID, RUN_ID)


def _errno(call: object) -> int:
    try:
        call()  # type: ignore[operator]
    except OSError as err:
        return err.errno or -1
    return 0


def test_the_run_uid_passes_a_closed_folder_but_never_lists_it(closed: Path) -> None:
    code = closed / "code"
    host_entries = sorted(os.listdir(closed))
    host_inode = (code.stat().st_dev, code.stat().st_ino)
    assert IDENTITY.unreachable([str(code)]) is not None  # the host's own view: blocked

    def trial() -> dict[str, object]:
        view = mount_view.enter(IDENTITY, [str(code)])
        seen = {
            "view": view,
            "entries": sorted(os.listdir(closed)),
            "inode": (code.stat().st_dev, code.stat().st_ino),
            "mode": closed.stat().st_mode & 0o7777,
            "link": os.readlink(closed / "link"),
            "unreachable": IDENTITY.unreachable([str(code)]),
        }
        _as_run_uid()
        seen["code"] = (closed / "link" / "lib.py").read_text()
        seen["list"] = _errno(lambda: os.listdir(closed))
        seen["secret"] = _errno(lambda: (closed / "secret.txt").read_text())
        seen["create"] = _errno(lambda: (closed / "new.txt").write_text("x"))
        return seen

    seen = in_child(trial).unwrap()
    assert seen["view"] == mount_view.MountView((str(closed),))
    assert seen["unreachable"] is None
    assert seen["code"] == "VALUE = 1\n"  # control: the way through works
    # Every entry is back at its name, as itself; only the folder's search bit for others moved.
    assert seen["entries"] == host_entries
    assert seen["inode"] == host_inode
    assert seen["link"] == "code"
    assert seen["mode"] == 0o701
    assert seen["list"] == errno.EACCES
    assert seen["secret"] == errno.EACCES  # its own mode, 0600, still applies
    assert seen["create"] == errno.EACCES
    assert closed.stat().st_mode & 0o7777 == 0o700
    assert sorted(os.listdir(closed)) == host_entries


def test_a_needed_path_and_what_lies_beneath_it_are_never_covered(closed: Path) -> None:
    code = closed / "code"
    assert mount_view.folders_to_open(IDENTITY, [str(code)]) == (str(closed),)
    # A workspace is needed itself: a run writes beneath it, so nothing there is ever covered.
    assert mount_view.folders_to_open(IDENTITY, [str(closed), str(code)]) == ()
    assert IDENTITY.unreachable([str(closed)]) is not None


def test_without_a_run_uid_or_anything_to_open_no_namespace_is_made(closed: Path) -> None:
    home = os.readlink("/proc/self/ns/mnt")

    def trial() -> tuple[object, object, str]:
        none = mount_view.enter(None, [str(closed / "code")])
        nothing = mount_view.enter(IDENTITY, ["/usr/lib"])
        return none, nothing, os.readlink("/proc/self/ns/mnt")

    none, nothing, namespace = in_child(trial).unwrap()
    assert none == nothing == mount_view.MountView()
    assert namespace == home


def test_where_mount_namespaces_fail_nothing_is_covered_and_the_view_says_why(
    closed: Path,
) -> None:
    def trial() -> object:
        capabilities.drop_all()  # uid 0 without CAP_SYS_ADMIN: unshare(CLONE_NEWNS) fails
        return mount_view.enter(IDENTITY, [str(closed / "code")])

    view = in_child(trial).unwrap()
    assert view.covered == ()
    assert "no private mount view" in view.problem and "not permitted" in view.problem


def test_a_zygote_with_a_view_leaves_the_hosts_mounts_untouched(closed: Path) -> None:
    before = Path("/proc/self/mountinfo").read_text()
    with SandboxRunner(identity=IDENTITY, prewarm=False, reach=(str(closed / "code"),)) as runner:
        view = runner.machine["mount_view"]
        zygotes = [p for p in psutil.Process().children() if p.name() == "plugbox-zygote"]
        assert len(zygotes) == 1
        theirs = Path(f"/proc/{zygotes[0].pid}/mountinfo").read_text()
        during = Path("/proc/self/mountinfo").read_text()
        root_mode = os.stat("/root").st_mode & 0o7777 if os.path.isdir("/root") else None
    assert str(closed) in view["covered"] and view["problem"] == ""
    assert f" {closed} " in theirs and "tmpfs" in theirs  # the zygote's view has the cover
    assert during == before  # the host's has nothing of it, while the zygote runs
    assert closed.stat().st_mode & 0o7777 == 0o700
    if root_mode is not None:
        assert root_mode == os.stat("/root").st_mode & 0o7777
        assert "/root" not in [line.split()[4] for line in during.splitlines()]


def test_doctor_says_so_where_the_view_cannot_be_made() -> None:
    """A host without mount namespaces (here: CAP_SYS_ADMIN dropped) keeps uid 0, and says why."""
    if IDENTITY.unreachable(code_paths()) is None:
        pytest.skip("this machine's Python is reachable without a mount view")

    def trial() -> object:
        capabilities.drop_all()
        return doctor._run_uid()

    layer = in_child(trial).unwrap()
    assert not layer.active
    assert "jobs run as uid 0 with no capability" in layer.detail
    assert "no private mount view" in layer.detail, layer.detail
