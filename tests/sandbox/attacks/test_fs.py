"""Classes B and A (write roots) of issue 9: kernel file rules and the workspace root.

Layers: the zygote opens every workspace rule path with ``openat2(RESOLVE_NO_SYMLINKS)`` and makes
the Landlock rule from that descriptor, so a rule through a planted link fails the spawn
(``LinkRefused``); the parent refuses a write root that is a link before that
(``WriteRootRefused``); Landlock refuses everything outside the grants (``EACCES``, or ``EXDEV``
for a link or rename that would gain rights); the workspace root is never a write root, and a
rule that would need it is refused at validation (lint).

The symlink attacks take two jobs: ``fs-plant`` makes the links, a second job declares a rule
through one. The control is the same second job once the link is replaced by a real folder with
a marker in it: it runs and reads the marker, so the refusal was the link's doing.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from plugbox.sandbox.run_identity import RUN_ID

from .conftest import ROOT, Host

OWN = Path(".plugbox/eve")


def _plant(host: Host) -> Path:
    attack = host.attack("fs-plant")
    for name in ("rootlink", "victimlink", "midlink"):
        attack.succeeded(name)
    own = host.workspace / OWN
    assert os.readlink(own / "rootlink") == "/"
    assert os.readlink(own / "victimlink") == str(host.victim)
    assert os.readlink(own / "midlink") == str(host.scratch)
    return own


def _real_folder(host: Host, link: Path, marker: str, below: str = "") -> None:
    """Replace ``link`` with a real folder; ``marker.txt`` in it (or in ``below``): the control."""
    link.unlink()
    folder = link / below if below else link
    folder.mkdir(parents=True)
    (folder / "marker.txt").write_text(marker)
    if host.user is not None and os.geteuid() == 0:
        for item in (link, folder, folder / "marker.txt"):
            os.chown(item, host.user.pw_uid, host.user.pw_gid)


def _refused_spawn(record: dict[str, Any], link: Path) -> str:
    assert record["status"] == "failed", record
    message: str = record["error"]["message"]
    assert "could not be started" in message, message
    assert "symbolic link" in message and "never follow links" in message, message
    assert str(link) in message, message
    return message


def test_a_read_rule_through_a_planted_link_to_root_fails_the_spawn(host: Host) -> None:
    own = _plant(host)
    _refused_spawn(host.run("fs-via-rootlink"), OWN / "rootlink")
    # Control: the same job, the same rule, a real folder there — it runs and reads.
    _real_folder(host, own / "rootlink", "real folder\n")
    attack = host.attack("fs-via-rootlink")
    assert attack.control == "real folder\n"
    attack.stopped("read_victim", errno.ENOENT)  # no link: that path is not there
    attack.stopped("read_victim_direct", errno.EACCES)  # Landlock


def test_a_rule_through_a_link_in_the_middle_of_its_path_fails_the_spawn(host: Host) -> None:
    own = _plant(host)
    _refused_spawn(host.run("fs-via-midlink"), OWN / "midlink")
    _real_folder(host, own / "midlink", "middle\n", below="victim")
    attack = host.attack("fs-via-midlink")
    assert attack.control == "middle\n"
    attack.stopped("read_victim", errno.ENOENT)


def test_a_write_root_that_is_a_planted_link_fails_the_spawn(host: Host) -> None:
    own = _plant(host)
    before = sorted(p.name for p in host.victim.iterdir())
    record = host.run("fs-write-via-link")
    message = _refused_spawn(record, OWN / "victimlink")
    assert "write root" in message  # the parent's check, before the zygote's
    assert sorted(p.name for p in host.victim.iterdir()) == before
    _real_folder(host, own / "victimlink", "x\n")
    attack = host.attack("fs-write-via-link")
    assert attack.control == "eve\n"
    attack.stopped("write_victim", errno.EACCES)
    assert (own / "victimlink" / "written.txt").read_text() == "eve\n"
    assert (host.victim / "file.txt").read_text() == "victim\n"
    assert not (host.victim / "written.txt").exists()


def test_dotdot_never_leaves_the_grant(host: Host) -> None:
    attack = host.attack("fs-dotdot")
    assert attack.control == "eve\n"
    for name in ("read_dotdot", "write_dotdot", "read_parent"):
        attack.stopped(name, errno.EACCES)  # Landlock: the victim is in no grant
    for name in ("proxy_read", "proxy_write"):
        assert "PermissionDenied" in attack.stopped(name)["error"]  # runtime.fs: path check
    assert (host.victim / "file.txt").read_text() == "victim\n"
    assert not (host.victim / "x.txt").exists()


def test_hard_links_and_renames_never_carry_a_file_across_grants(host: Host) -> None:
    docs = host.workspace / "docs"
    docs.mkdir()
    (docs / "readme.txt").write_text("read only\n")
    if host.user is not None and os.geteuid() == 0:
        for item in (docs, docs / "readme.txt"):
            os.chown(item, host.user.pw_uid, host.user.pw_gid)
    if host.kind == ROOT:
        # A root host's job runs as the run uid, which may hard-link only files it owns
        # (protected_hardlinks, EPERM): hand it the two targets, so that Landlock is what is
        # tried here, as on the unprivileged host where the job owns them.
        for item in (docs / "readme.txt", host.victim / "file.txt"):
            os.chown(item, RUN_ID, RUN_ID)
    attack = host.attack("fs-links-renames")
    assert attack.control == "eve\n"  # a rename inside its own folder works
    # Landlock: a link or rename that would give the file more rights than it had is EXDEV;
    # one whose source or destination is outside every write grant is EACCES.
    attack.stopped("link_victim_in", errno.EXDEV, errno.EACCES)
    attack.stopped("link_read_only_in", errno.EXDEV)
    attack.stopped("link_own_to_root", errno.EACCES)
    attack.stopped("link_own_to_victim", errno.EACCES, errno.EXDEV)
    attack.stopped("rename_read_only_in", errno.EACCES, errno.EXDEV)
    attack.stopped("rename_own_to_read_only", errno.EACCES, errno.EXDEV)
    attack.stopped("rename_own_to_victim", errno.EACCES, errno.EXDEV)
    attack.stopped("rename_own_to_root", errno.EACCES, errno.EXDEV)
    attack.stopped("rename_victim_in", errno.EACCES, errno.EXDEV)
    assert (docs / "readme.txt").read_text() == "read only\n"
    assert (host.victim / "file.txt").read_text() == "victim\n"
    assert not (host.workspace / "sitecustomize.py").exists()
    assert not (host.workspace / "hl-root.txt").exists()


def test_the_workspace_root_is_never_writable_even_where_it_is_readable(host: Host) -> None:
    (host.workspace / "README.md").write_text("readme\n")
    attack = host.attack("fs-root-writes")
    assert "README.md" in attack.control["listing"]  # '*.md' makes the root readable: it ran
    assert attack.control["own"] == "eve\n"
    for name in ("plugbox_toml", "socket_py", "append_readme", "mkdir", "symlink", "fifo",
                 "remove_readme", "rename_own_folder"):  # fmt: skip
        attack.stopped(name, errno.EACCES)  # Landlock: the root is no write root
    assert "PermissionDenied" in attack.stopped("proxy_write")["error"]
    # Nothing new at the root but the host's own workspace mark (config/workspace_mark.py).
    assert sorted(p.name for p in host.workspace.iterdir()) == [
        ".plugbox",
        ".plugbox-workspace",
        "README.md",
    ]
    assert (host.workspace / "README.md").read_text() == "readme\n"


def test_the_run_record_shows_what_the_kernel_granted_beside_the_declaration(host: Host) -> None:
    attack = host.attack("fs-root-writes")
    assert attack.control["own"] == "eve\n"
    enforcement = attack.record["enforcement"]
    assert enforcement["kernel"] == {"read": ["."], "write": [str(OWN)], "execute": []}
    # '*.md' is a read of the whole workspace at the kernel: wider than declared, and said so.
    assert any("read the whole workspace" in note for note in enforcement["notes"])
    assert enforcement["shell"] == "kernel"  # no shell capability: seccomp refuses execve
    inspected = json.loads(host.cli("plugins", "inspect", "eve", "--json").stdout)
    assert inspected["jobs"]["fs-root-writes"]["kernel"] == enforcement["kernel"]


def test_a_rule_naming_one_file_is_kernel_enforced_only_as_its_folder_and_the_record_says_so(
    host: Host,
) -> None:
    attack = host.attack("fs-file-rule")
    assert attack.control == "eve\n"  # the named file was written: the job ran
    # runtime.fs refuses a sibling the rule does not name...
    assert "PermissionDenied" in attack.stopped("proxy_sibling")["error"]
    # ...and Landlock refuses anything outside the folder (EACCES)...
    attack.stopped("raw_beside_folder", errno.EACCES)
    # ...but inside the folder only runtime.fs stands: code that bypasses it writes a sibling.
    attack.succeeded("raw_sibling")
    enforcement = attack.record["enforcement"]
    assert enforcement["kernel"]["write"] == [str(OWN / "reports")]
    assert any(f"write anything in {OWN / 'reports'}/" in note for note in enforcement["notes"]), (
        enforcement["notes"]
    )


_TRUDY = """
from plugbox.sdk import define_manifest, hookimpl, job
from plugbox.sdk import permissions as perms


@job("logs", schedule="@daily", permissions=perms.Permissions(
    fs=[perms.FsPermissions(mode="read", allow=["docs/"]),
        perms.FsPermissions(mode="readWrite", allow=["logs/", "*.log"])]))
def logs(ctx):
    open("plugbox.toml", "w").write("x = 1\\n")


@hookimpl
def plugbox_manifest():
    return define_manifest(id="trudy", version="0.1.0", name="Trudy", jobs=[logs])
"""


def _install_trudy(host: Host) -> None:
    """A plugin whose only job declares ``readWrite *.log``, installed beside eve."""
    site = host.scratch / "site-trudy"
    info = site / "plugbox_trudy-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / "plugbox_trudy.py").write_text(_TRUDY)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugbox-trudy\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[plugbox]\ntrudy = plugbox_trudy\n")
    (info / "RECORD").write_text("")
    for path in (site, *site.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    text = host.config.read_text()
    host.config.write_text(text.replace('plugin_paths = ["', f'plugin_paths = ["{site}", "'))


@pytest.mark.parametrize("command", [("plugins", "list", "--json"), ("plugins", "list")])
def test_a_write_rule_that_would_open_the_workspace_root_is_refused_at_validation(
    host: Host, command: tuple[str, ...]
) -> None:
    _install_trudy(host)
    out = host.cli(*command)
    assert out.returncode == 0, out.stderr
    shown = out.stdout + out.stderr
    assert "trudy" in shown
    assert "jobs[0].permissions.fs[1].allow[1]" in shown  # the location: job, rule set, index
    assert "'*.log'" in shown and "workspace root" in shown
    assert "data/*.log" in shown  # what to write instead
    assert "eve" in shown  # the other plugins still load
    ran = host.cli("jobs", "run", "trudy:logs", "--json")
    assert ran.returncode != 0 and "trudy" in ran.stdout + ran.stderr  # not runnable at all
    assert not (host.workspace / "plugbox.toml").exists()
