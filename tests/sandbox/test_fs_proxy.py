"""runtime.fs in the debug runtime: checked calls, race-free opens, link and type tricks refused."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbox.sandbox.proxies import CheckedFs
from plugbox.sdk import PermissionDenied
from plugbox.sdk import permissions as perms

SECRET = "TOP-SECRET-VALUE"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / ".plugbox" / "ex").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# guide\n")
    (tmp_path / ".env").write_text(f"TOKEN={SECRET}\n")
    (tmp_path / "private.txt").write_text(SECRET)
    return tmp_path


@pytest.fixture
def fs(workspace: Path) -> Iterator[CheckedFs]:
    permissions = perms.combine(
        perms.presets.plugin_workspace("ex"),
        perms.Permissions(fs=perms.FsPermissions(mode="read", allow=("docs/**",))),
    )
    proxy = CheckedFs(workspace, perms.compile_policy(permissions))
    yield proxy
    proxy.close()


def test_round_trip_inside_the_plugin_workspace(fs: CheckedFs, workspace: Path) -> None:
    fs.mkdir(".plugbox/ex/cache/deep", parents=True, exist_ok=True)
    fs.write_text(".plugbox/ex/cache/a.txt", "one\n")
    fs.append_text(".plugbox/ex/cache/a.txt", "two\n")
    assert fs.read_text(".plugbox/ex/cache/a.txt") == "one\ntwo\n"
    fs.write_bytes(".plugbox/ex/b.bin", b"\x00\x01")
    assert fs.read_bytes(".plugbox/ex/b.bin") == b"\x00\x01"
    assert fs.listdir(".plugbox/ex") == ["b.bin", "cache"]
    info = fs.stat(".plugbox/ex/cache/a.txt")
    assert info.is_file and not info.is_dir and info.size == 8
    assert fs.stat(".plugbox/ex/cache").is_dir
    assert fs.exists(".plugbox/ex/b.bin") and not fs.exists(".plugbox/ex/nope")
    fs.rename(".plugbox/ex/b.bin", ".plugbox/ex/c.bin")
    fs.remove(".plugbox/ex/c.bin")
    fs.remove(".plugbox/ex/cache/deep")
    assert sorted(os.listdir(workspace / ".plugbox" / "ex")) == ["cache"]
    assert (workspace / ".plugbox" / "ex" / "cache" / "a.txt").stat().st_mode & 0o111 == 0


def test_mkdir_semantics(fs: CheckedFs) -> None:
    with pytest.raises(FileNotFoundError):
        fs.mkdir(".plugbox/ex/a/b")
    fs.mkdir(".plugbox/ex/a")
    with pytest.raises(FileExistsError):
        fs.mkdir(".plugbox/ex/a")
    fs.mkdir(".plugbox/ex/a", exist_ok=True)


@pytest.mark.parametrize(
    ("call", "rule"),
    [
        (lambda fs: fs.read_text(".env"), "'**/*.env'"),
        (lambda fs: fs.read_text("../outside"), "path check"),
        (lambda fs: fs.read_text("/etc/passwd"), "path check"),
        (lambda fs: fs.write_text("docs/guide.md", "x"), "read-only"),
        (lambda fs: fs.write_text(".plugbox/ex/key.pem", "x"), "'**/*.pem'"),
        (lambda fs: fs.mkdir(".plugbox/other", parents=True), "default deny"),
        (lambda fs: fs.rename("docs/guide.md", ".plugbox/ex/guide.md"), "read-only"),
        (lambda fs: fs.remove("private.txt"), "default deny"),
        (lambda fs: fs.listdir("."), "default deny"),
        (lambda fs: fs.stat("private.txt"), "default deny"),
        (lambda fs: fs.exists(".env"), "'**/*.env'"),
    ],
)
def test_denied_calls_name_the_rule(fs: CheckedFs, call: object, rule: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        call(fs)  # type: ignore[operator]
    assert rule in str(caught.value)


def test_symlink_to_a_denied_file_is_refused(fs: CheckedFs, workspace: Path) -> None:
    (workspace / ".plugbox" / "ex" / "link").symlink_to(workspace / ".env")
    with pytest.raises(PermissionDenied, match="symlink"):
        fs.read_text(".plugbox/ex/link")
    with pytest.raises(PermissionDenied, match="symlink"):
        fs.write_text(".plugbox/ex/link", "overwrite")
    assert SECRET in (workspace / ".env").read_text()


def test_symlinked_directory_on_the_path_is_refused(fs: CheckedFs, workspace: Path) -> None:
    (workspace / ".plugbox" / "ex" / "up").symlink_to(workspace)
    with pytest.raises(PermissionDenied, match="symlink"):
        fs.read_text(".plugbox/ex/up/private.txt")


def test_hard_link_to_a_denied_file_is_refused(fs: CheckedFs, workspace: Path) -> None:
    os.link(workspace / "private.txt", workspace / ".plugbox" / "ex" / "hard.txt")
    with pytest.raises(PermissionDenied, match="hard links"):
        fs.read_text(".plugbox/ex/hard.txt")
    with pytest.raises(PermissionDenied, match="hard links"):
        fs.write_text(".plugbox/ex/hard.txt", "clobber")
    assert (workspace / "private.txt").read_text() == SECRET


def test_fifo_is_refused_instead_of_blocking(fs: CheckedFs, workspace: Path) -> None:
    os.mkfifo(workspace / ".plugbox" / "ex" / "pipe")
    with pytest.raises(PermissionDenied, match="regular files"):
        fs.read_text(".plugbox/ex/pipe")


def test_listdir_hides_denied_names(fs: CheckedFs, workspace: Path) -> None:
    (workspace / ".plugbox" / "ex" / "ok.txt").write_text("x")
    (workspace / ".plugbox" / "ex" / "id.key").write_text("x")
    assert fs.listdir(".plugbox/ex") == ["ok.txt"]


def test_symlink_swapped_in_a_tight_loop_never_leaks(fs: CheckedFs, workspace: Path) -> None:
    target = workspace / ".plugbox" / "ex" / "flip"
    regular = workspace / ".plugbox" / "ex" / "regular"
    regular.write_text("harmless")
    stop = threading.Event()

    def flipper() -> None:
        tmp_link = workspace / ".plugbox" / "ex" / "tmp-link"
        tmp_file = workspace / ".plugbox" / "ex" / "tmp-file"
        while not stop.is_set():
            if tmp_link.is_symlink():
                tmp_link.unlink()
            tmp_link.symlink_to(workspace / "private.txt")
            os.replace(tmp_link, target)
            tmp_file.write_text("harmless")
            os.replace(tmp_file, target)

    thread = threading.Thread(target=flipper)
    thread.start()
    leaked = refused = served = 0
    try:
        for _ in range(3000):
            try:
                text = fs.read_text(".plugbox/ex/flip")
            except PermissionDenied:
                refused += 1
            except FileNotFoundError:
                continue
            else:
                served += 1
                leaked += SECRET in text
    finally:
        stop.set()
        thread.join()
    assert leaked == 0
    assert refused > 0 and served > 0  # the race really was exercised both ways


def test_listdir_hides_a_folder_a_directory_only_deny_covers(tmp_path: Path) -> None:
    (tmp_path / "data" / "secret").mkdir(parents=True)
    (tmp_path / "data" / "secret" / "key.pem").write_text("k")
    (tmp_path / "data" / "open.txt").write_text("o")
    (tmp_path / "data" / "secret.txt").write_text("a file named like the folder")
    permissions = perms.Permissions(fs=perms.FsPermissions(allow=["data/"], deny=["data/secret/"]))
    proxy = CheckedFs(tmp_path, perms.compile_policy(permissions))
    try:
        assert proxy.listdir("data") == ["open.txt", "secret.txt"]
    finally:
        proxy.close()
