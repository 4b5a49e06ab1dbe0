"""Files: kernel rules through planted symlinks, ``..``, hard links and renames across roots, and
writes at the workspace root.

The symlink attack takes two jobs: ``fs-plant`` (allowed to write its own folder) makes links
there, and the ``fs-via-*`` jobs declare rules that look harmless — ``read
.plugbox/eve/rootlink/**`` — but whose kernel rule would follow a link to ``/`` or to the victim.
When the rule path is a real folder, each of them reads (or writes) a marker there: the control.
"""

from __future__ import annotations

import os
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, outside, report, victim

OWN = ".plugbox/eve"
OWN_RW = perms.Permissions(fs=perms.FsPermissions(mode="readWrite", allow=(f"{OWN}/",)))


def _relink(link: str, target: str) -> str:
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(target, link)
    return os.readlink(link)


@job("fs-plant", schedule="@daily", timeout="20s", permissions=OWN_RW)
def fs_plant(ctx: JobContext) -> dict[str, Any]:
    """Job 1: links in its own folder to ``/``, to the victim folder and to the folder above."""
    return report(
        {"cwd": os.getcwd()},
        rootlink=attempt(_relink, f"{OWN}/rootlink", "/"),
        victimlink=attempt(_relink, f"{OWN}/victimlink", victim()),
        midlink=attempt(_relink, f"{OWN}/midlink", outside()),
    )


def _marker_and_escape(root: str) -> dict[str, Any]:
    return report(
        open(f"{root}/marker.txt").read(),
        # Through the real folder, these paths do not exist; through a link they would.
        read_victim=attempt(lambda: open(f"{root}/{victim('file.txt').lstrip('/')}").read()),
        read_victim_direct=attempt(lambda: open(victim("file.txt")).read()),
    )


@job(
    "fs-via-rootlink",
    schedule="@daily",
    timeout="20s",
    permissions=perms.Permissions(fs=perms.FsPermissions(allow=(f"{OWN}/rootlink/**",))),
)
def fs_via_rootlink(ctx: JobContext) -> dict[str, Any]:
    """Job 2: declares only a read of what is under ``rootlink``."""
    return _marker_and_escape(f"{OWN}/rootlink")


@job(
    "fs-via-midlink",
    schedule="@daily",
    timeout="20s",
    permissions=perms.Permissions(fs=perms.FsPermissions(allow=(f"{OWN}/midlink/victim/**",))),
)
def fs_via_midlink(ctx: JobContext) -> dict[str, Any]:
    """A link as an intermediate component of the rule path (``midlink`` -> the scratch dir)."""
    root = f"{OWN}/midlink/victim"
    return report(
        open(f"{root}/marker.txt").read(),
        read_victim=attempt(lambda: open(f"{root}/file.txt").read()),
    )


@job(
    "fs-write-via-link",
    schedule="@daily",
    timeout="20s",
    permissions=perms.Permissions(
        fs=perms.FsPermissions(mode="readWrite", allow=(f"{OWN}/victimlink/",))
    ),
)
def fs_write_via_link(ctx: JobContext) -> dict[str, Any]:
    """The readWrite variant: a write root that is a link to the victim folder."""
    root = f"{OWN}/victimlink"
    with open(f"{root}/written.txt", "w") as handle:
        handle.write("eve\n")
    return report(
        open(f"{root}/written.txt").read(),
        write_victim=attempt(lambda: open(victim("file.txt"), "a").write("pwned")),
    )


def _write(path: str, text: str = "eve\n") -> int:
    with open(path, "w") as handle:
        return handle.write(text)


@job("fs-dotdot", schedule="@daily", timeout="20s", permissions=OWN_RW)
def fs_dotdot(ctx: JobContext) -> dict[str, Any]:
    """``..`` out of a granted folder, by plain calls and through runtime.fs."""
    os.makedirs(f"{OWN}/sub", exist_ok=True)
    _write(f"{OWN}/sub/mine.txt")
    escape = f"{OWN}/sub/../../../../victim/file.txt"
    return report(
        open(f"{OWN}/sub/../sub/mine.txt").read(),  # '..' inside the grant is fine
        read_dotdot=attempt(lambda: open(escape).read()),
        write_dotdot=attempt(lambda: open(escape, "a").write("pwned")),
        read_parent=attempt(lambda: open("../victim/file.txt").read()),
        proxy_read=attempt(ctx.runtime.fs.read_text, "../victim/file.txt"),
        proxy_write=attempt(ctx.runtime.fs.write_text, f"{OWN}/../../../victim/x.txt", "x"),
    )


@job(
    "fs-links-renames",
    schedule="@daily",
    timeout="20s",
    permissions=perms.combine(
        OWN_RW, perms.Permissions(fs=perms.FsPermissions(mode="read", allow=("docs/",)))
    ),
)
def fs_links_renames(ctx: JobContext) -> dict[str, Any]:
    """Hard links and renames between the victim, a read-only root, the own folder, the root."""
    _write(f"{OWN}/mine.txt")
    for name in ("hl-victim", "hl-docs", "moved-docs", "renamed.txt"):
        if os.path.lexists(f"{OWN}/{name}"):
            os.remove(f"{OWN}/{name}")
    os.rename(f"{OWN}/mine.txt", f"{OWN}/renamed.txt")  # inside the own folder: fine
    return report(
        open(f"{OWN}/renamed.txt").read(),
        link_victim_in=attempt(os.link, victim("file.txt"), f"{OWN}/hl-victim"),
        link_read_only_in=attempt(os.link, "docs/readme.txt", f"{OWN}/hl-docs"),
        link_own_to_root=attempt(os.link, f"{OWN}/renamed.txt", "hl-root.txt"),
        link_own_to_victim=attempt(os.link, f"{OWN}/renamed.txt", victim("hl.txt")),
        rename_read_only_in=attempt(os.rename, "docs/readme.txt", f"{OWN}/moved-docs"),
        rename_own_to_read_only=attempt(os.rename, f"{OWN}/renamed.txt", "docs/moved.txt"),
        rename_own_to_victim=attempt(os.rename, f"{OWN}/renamed.txt", victim("moved.txt")),
        rename_own_to_root=attempt(os.rename, f"{OWN}/renamed.txt", "sitecustomize.py"),
        rename_victim_in=attempt(os.rename, victim("file.txt"), f"{OWN}/stolen.txt"),
    )


@job(
    "fs-root-writes",
    schedule="@daily",
    timeout="20s",
    permissions=perms.combine(
        OWN_RW, perms.Permissions(fs=perms.FsPermissions(mode="read", allow=("*.md",)))
    ),
)
def fs_root_writes(ctx: JobContext) -> dict[str, Any]:
    """Writing the workspace root, which a read pattern without a '/' makes readable."""
    _write(f"{OWN}/control.txt")
    return report(
        {"listing": sorted(os.listdir(".")), "own": open(f"{OWN}/control.txt").read()},
        plugbox_toml=attempt(_write, "plugbox.toml", 'host_id = "eve"\n'),
        socket_py=attempt(_write, "socket.py", "raise SystemExit('eve')\n"),
        append_readme=attempt(lambda: open("README.md", "a").write("eve")),
        mkdir=attempt(os.mkdir, "eve-dir"),
        symlink=attempt(os.symlink, "/", "eve-link"),
        fifo=attempt(os.mkfifo, "eve-fifo"),
        remove_readme=attempt(os.remove, "README.md"),
        rename_own_folder=attempt(os.rename, ".plugbox", "eve-moved"),
        proxy_write=attempt(ctx.runtime.fs.write_text, "plugbox.toml", "x"),
    )


@job(
    "fs-file-rule",
    schedule="@daily",
    timeout="20s",
    permissions=perms.Permissions(
        fs=perms.FsPermissions(mode="readWrite", allow=(f"{OWN}/reports/summary.json",))
    ),
)
def fs_file_rule(ctx: JobContext) -> dict[str, Any]:
    """A rule that names one file: the kernel can only grant its folder (creation is per folder)."""
    ctx.runtime.fs.write_text(f"{OWN}/reports/summary.json", "eve\n")
    return report(
        open(f"{OWN}/reports/summary.json").read(),
        raw_sibling=attempt(_write, f"{OWN}/reports/other.txt"),
        proxy_sibling=attempt(ctx.runtime.fs.write_text, f"{OWN}/reports/other2.txt", "x"),
        raw_beside_folder=attempt(_write, f"{OWN}/beside.txt"),
    )


JOBS = [
    fs_plant,
    fs_via_rootlink,
    fs_via_midlink,
    fs_write_via_link,
    fs_dotdot,
    fs_links_renames,
    fs_root_writes,
    fs_file_rule,
]
