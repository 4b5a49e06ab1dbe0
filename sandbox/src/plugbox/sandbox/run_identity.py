"""Who a job runs as: on a root host, a dedicated unprivileged uid — wherever the OS allows it.

Dropping every capability takes away what root *may* do, but not what uid 0 *is*: the owner of
most of the machine's files. So on a root host a run child switches to the run uid (``run_uid``
in plugbox.toml, :data:`RUN_ID` by default; gid alike, no supplementary groups, no passwd entry
needed) after Landlock is applied and before job code runs. Then the files a job creates are
visibly not the operator's, and owner-based access to root's files is gone as a layer under
Landlock.

"Where the OS allows it": the job must still reach, as that uid, every path it needs — the
Python prefix, installed code, its workspace and read roots. A folder on the way that other users
cannot search (a Python under ``/root``, mode 0700, as on this project's CI machines) is opened
for the run uid in the zygote's private mount view (:mod:`plugbox.sandbox.kernel.mount_view`):
searchable there, never listable, untouched for the host. :attr:`RunIdentity.searchable` names
those folders, so the parent decides as the child will see. What stays out of reach — a needed
path's own mode (a 0700 workspace), a machine without mount namespaces — keeps the run at uid 0
without capabilities, and its record says which path blocked the switch and how to fix it. The
directories a job may write are handed to the run uid by the parent before each spawn.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace

from plugbox.sandbox.kernel import capabilities
from plugbox.sandbox.limits.reaper import die_with_parent

#: The run uid and gid of a root host: unprivileged, owned by no account (distroless "nonroot").
RUN_ID = 65532

_O_PATH_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class RunIdentity:
    uid: int
    gid: int
    #: Folders this uid may search whatever their mode says: those the zygote's mount view
    #: opened for it (kernel/mount_view.py). Only the zygote's processes see them so.
    searchable: frozenset[str] = frozenset()

    @classmethod
    def for_this_host(cls) -> RunIdentity | None:
        """The dedicated identity on a root host; None where the host is the job's only uid."""
        return cls(RUN_ID, RUN_ID) if os.geteuid() == 0 else None

    def seeing(self, searchable: Iterable[str]) -> RunIdentity:
        """This identity as it sees the filesystem where ``searchable`` folders were opened."""
        return replace(self, searchable=frozenset(searchable))

    def unreachable(self, paths: Iterable[str]) -> str | None:
        """Why this identity cannot use one of ``paths`` (reach and read it), or None.

        Mode bits only: an ACL that would let the uid in is not read, so such a path counts as
        out of reach (the run then keeps uid 0 and says why, never the other way round).
        """
        for path in paths:
            real = os.path.realpath(path)
            if not os.path.exists(real):
                continue
            parts = real.split("/")
            # Every folder on the way, then the path itself (its own mode counts too).
            steps = ["/"] + ["/" + "/".join(parts[1 : i + 1]) for i in range(1, len(parts))]
            for current in dict.fromkeys(steps):
                info = os.stat(current)
                if current != real:
                    if current in self.searchable:
                        continue
                    need = 0o1  # search
                elif stat.S_ISDIR(info.st_mode):
                    need = 0o5  # list and search
                else:
                    need = 0o4  # read
                if not self.may(info, need):
                    return (
                        f"{current} (mode {stat.S_IMODE(info.st_mode):04o}, owner uid "
                        f"{info.st_uid}) keeps uid {self.uid} from {path}"
                    )
        return None

    def is_other(self, info: os.stat_result) -> bool:
        """Whether only the "other" mode bits of a file with ``info`` apply to this identity."""
        return info.st_uid != self.uid and info.st_gid != self.gid

    def may(self, info: os.stat_result, need: int) -> bool:
        """Whether the mode bits of a file with ``info`` grant this identity ``need`` (rwx bits)."""
        if info.st_uid == self.uid:
            bits = (info.st_mode >> 6) & 0o7
        elif info.st_gid == self.gid:
            bits = (info.st_mode >> 3) & 0o7
        else:
            bits = info.st_mode & 0o7
        return bits & need == need

    def become(self) -> None:
        """In the run child, as root, after Landlock: switch to this identity for good.

        The bounding set is emptied first, while ``CAP_SETPCAP`` is still held; ``setresuid``
        from uid 0 to a non-zero uid then clears every other capability set. The parent-death
        signal is reset by the kernel on a credential change, so it is asked for again.
        """
        parent = os.getppid()
        os.setgroups([])
        os.setresgid(self.gid, self.gid, self.gid)
        capabilities.drop_bounding()
        os.setresuid(self.uid, self.uid, self.uid)
        die_with_parent(parent)

    def own(self, workspace: str, write_roots: Iterable[str]) -> None:
        """In the parent, before a spawn: hand each write root (and, once, what is in it) over.

        Every step is relative to a descriptor opened without following links, so a link a job
        planted can never turn this into a chown of some other file.
        """
        for root in write_roots:
            if not root:
                continue  # the workspace root is never a write root
            fd = _open_beneath(workspace, root)
            try:
                info = os.fstat(fd)
                if (info.st_uid, info.st_gid) != (self.uid, self.gid):
                    self._own_tree(fd)
            finally:
                os.close(fd)

    def _own_tree(self, fd: int) -> None:
        os.fchown(fd, self.uid, self.gid)
        with os.scandir(fd) as entries:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in names:
            with contextlib.suppress(FileNotFoundError):
                if is_dir:
                    child = os.open(name, _O_PATH_DIR, dir_fd=fd)
                    try:
                        self._own_tree(child)
                    finally:
                        os.close(child)
                else:
                    os.chown(name, self.uid, self.gid, dir_fd=fd, follow_symlinks=False)


def _open_beneath(workspace: str, relative: str) -> int:
    """An fd of ``workspace/relative``, every component opened without following a link."""
    fd = os.open(workspace, _O_PATH_DIR)
    try:
        for part in relative.split("/"):
            next_fd = os.open(part, _O_PATH_DIR, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd
