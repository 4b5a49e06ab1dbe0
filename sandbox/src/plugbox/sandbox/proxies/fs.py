"""``runtime.fs``: workspace files, each call decided first and then opened race-free.

Two things make a path check worth anything here:

* the decision is taken on the normalised path *and* on the real type of what is there (a
  directory-only deny such as ``secrets/`` must not be dodged by calling ``stat`` instead of
  ``listdir``), and
* the open that follows resolves the same path strictly beneath the held workspace descriptor
  without following any symlink (:func:`~plugbox.sandbox._openat2.open_beneath`), so a link swapped
  in after the check is refused by the kernel in the same step that opens the file.

Files with more than one hard link are refused: their other name may be a denied file, and the
content is shared. Special files (FIFOs, devices, sockets) are refused so a read cannot block
forever or talk to a device.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mode
from collections.abc import Iterator
from contextlib import contextmanager

from plugbox.sandbox._openat2 import open_beneath
from plugbox.sdk import FileStat, PermissionDenied
from plugbox.sdk.permissions import Decider, Operation

#: Largest file ``read_bytes``/``read_text`` will load into memory.
DEFAULT_MAX_READ_BYTES = 256 * 1024 * 1024
_NEW_FILE_MODE = 0o644  # never executable: a job cannot plant a program for runtime.shell
_NEW_DIR_MODE = 0o755
_SYMLINK_RULE = "symlink check"
_TYPE_RULE = "file type check"


class CheckedFs:
    """The ``runtime.fs`` proxy: paths are relative to the workspace root, which is also the cwd."""

    def __init__(
        self,
        workspace: str | os.PathLike[str],
        decider: Decider,
        *,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        max_file_bytes: int | None = None,
        listing_decider: Decider | None = None,
    ) -> None:
        self._root = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._decider = decider
        # listdir hides entries the job may not read; those checks are not calls the job made,
        # so they go to a decider that does not record them as accesses.
        self._listing = listing_decider or decider
        self._max_read = max_read_bytes
        self._max_file = max_file_bytes

    def close(self) -> None:
        os.close(self._root)

    # -- checks ---------------------------------------------------------------------------
    def _check(self, operation: Operation, path: str, *, is_dir: bool = False) -> str:
        verdict = self._decider.decide(operation, path, is_dir=is_dir)
        verdict.raise_if_denied()
        return "" if verdict.target == "." else verdict.target

    def _check_file(self, operation: Operation, path: str) -> str:
        """Decide a call that reads or writes a file's content.

        A folder that only a folder rule (``x/``) names fails as any allowed folder does
        (``IsADirectoryError``, or the read-only refusal of a write), not as "no rule allows".
        """
        verdict = self._decider.decide(operation, path)
        if verdict.allowed:
            return "" if verdict.target == "." else verdict.target
        as_dir = self._listing.decide(operation, path, is_dir=True)
        if verdict.target != "." and (as_dir.allowed or as_dir.rule != verdict.rule):
            info = self._lstat(operation, verdict.target)
            if info is not None and stat_mode.S_ISDIR(info.st_mode):
                self._check(operation, path, is_dir=True)
                raise IsADirectoryError(errno.EISDIR, "is a directory", verdict.target)
        raise PermissionDenied(verdict.operation, verdict.target, verdict.rule, verdict.reason)

    def _check_named(self, operation: Operation, path: str) -> tuple[str, os.stat_result | None]:
        """Decide a call on a path of either type (``exists``, ``stat``, ``remove``, ``rename``).

        The decision is taken for what is really there: a folder rule (``x/``) allows ``x``
        when ``x`` is a folder, and a directory-only deny (``secret/``) cannot be dodged with
        ``stat``. The type is looked up only when some rule tells the two apart; the
        probes go through the unrecorded listing decider, so the record holds the one decision
        that counted. Returns the normalised path and its ``lstat`` (None when absent).
        """
        as_file = self._listing.decide(operation, path)
        if not as_file.allowed:
            as_dir = self._listing.decide(operation, path, is_dir=True)
            if not as_dir.allowed and as_dir.rule == as_file.rule:
                self._check(operation, path)  # raises, naming the rule and any hint
        norm = "" if as_file.target == "." else as_file.target
        if not norm:
            self._check(operation, path, is_dir=True)
            return norm, os.fstat(self._root)
        info = self._lstat(operation, norm)
        # Something absent is decided as the type a rule allows: exists() answers False for
        # a folder rule's folder that is not there yet, never "refused".
        is_dir = stat_mode.S_ISDIR(info.st_mode) if info is not None else not as_file.allowed
        self._check(operation, path, is_dir=is_dir)
        return norm, info

    def _lstat(self, operation: Operation, norm: str) -> os.stat_result | None:
        """:meth:`_kind`, with a missing parent read as the path being absent too."""
        try:
            return self._kind(operation, norm)
        except (FileNotFoundError, NotADirectoryError):
            return None

    @contextmanager
    def _opened(
        self, operation: Operation, path: str, flags: int, mode: int = 0
    ) -> Iterator[tuple[int, str]]:
        norm = self._check_file(operation, path)
        try:
            fd = open_beneath(self._root, norm, flags | os.O_NONBLOCK, mode)
        except OSError as err:
            raise self._translate(err, operation, norm) from None
        try:
            yield fd, norm
        finally:
            os.close(fd)

    def _translate(self, err: OSError, operation: Operation, norm: str) -> OSError:
        if err.errno in (errno.ELOOP, errno.EXDEV):
            return PermissionDenied(
                operation,
                norm or ".",
                _SYMLINK_RULE,
                "symlinks are not followed inside the workspace",
            )
        err.filename = norm or "."
        return err

    @staticmethod
    def _regular(fd: int, operation: Operation, norm: str) -> os.stat_result:
        info = os.fstat(fd)
        if stat_mode.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", norm)
        if not stat_mode.S_ISREG(info.st_mode):
            raise PermissionDenied(
                operation, norm, _TYPE_RULE, "only regular files can be read or written"
            )
        if info.st_nlink > 1:
            raise PermissionDenied(
                operation,
                norm,
                _TYPE_RULE,
                "the file has other hard links, which may be denied names",
            )
        return info

    def _parent(self, operation: Operation, norm: str) -> tuple[int, str]:
        parent, _, name = norm.rpartition("/")
        try:
            return open_beneath(self._root, parent, os.O_PATH | os.O_DIRECTORY), name
        except OSError as err:
            raise self._translate(err, operation, parent) from None

    def _kind(self, operation: Operation, norm: str) -> os.stat_result | None:
        """``lstat`` of ``norm`` through a descriptor of its parent, or None when it is absent."""
        parent_fd, name = self._parent(operation, norm)
        try:
            return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent_fd)

    # -- reading --------------------------------------------------------------------------
    def read_bytes(self, path: str) -> bytes:
        with self._opened("fs.read", path, os.O_RDONLY) as (fd, norm):
            info = self._regular(fd, "fs.read", norm)
            if info.st_size > self._max_read:
                raise OSError(errno.EFBIG, f"larger than {self._max_read} bytes", norm)
            chunks = []
            remaining = self._max_read + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
            if len(data) > self._max_read:
                raise OSError(errno.EFBIG, f"larger than {self._max_read} bytes", norm)
            return data

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def listdir(self, path: str = ".") -> list[str]:
        norm = self._check("fs.read", path, is_dir=True)
        try:
            fd = open_beneath(self._root, norm, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            raise self._translate(err, "fs.read", norm) from None
        try:
            with os.scandir(fd) as entries:
                found = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        finally:
            os.close(fd)
        prefix = f"{norm}/" if norm else ""
        # Names of entries the job may not read are not shown: existence is information too.
        # Each is decided as what it is, so a directory-only deny (`secret/`) hides a folder.
        return sorted(
            name
            for name, is_dir in found
            if self._listing.decide("fs.read", prefix + name, is_dir=is_dir).allowed
        )

    def stat(self, path: str) -> FileStat:
        norm, info = self._check_named("fs.read", path)
        if info is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", norm)
        is_dir = stat_mode.S_ISDIR(info.st_mode)
        if stat_mode.S_ISLNK(info.st_mode):
            raise PermissionDenied(
                "fs.read", norm, _SYMLINK_RULE, "symlinks are not followed inside the workspace"
            )
        return FileStat(
            size=info.st_size,
            modified=info.st_mtime,
            is_dir=is_dir,
            is_file=stat_mode.S_ISREG(info.st_mode),
        )

    def exists(self, path: str) -> bool:
        return self._check_named("fs.read", path)[1] is not None

    # -- writing --------------------------------------------------------------------------
    def _write(self, path: str, data: bytes, *, append: bool) -> None:
        if self._max_file is not None and len(data) > self._max_file:
            raise OSError(
                errno.EFBIG, f"larger than the {self._max_file}-byte file size quota", path
            )
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
        with self._opened("fs.write", path, flags, _NEW_FILE_MODE) as (fd, norm):
            info = self._regular(fd, "fs.write", norm)
            if append and self._max_file is not None and info.st_size + len(data) > self._max_file:
                raise OSError(
                    errno.EFBIG, f"would exceed the {self._max_file}-byte file size quota", norm
                )
            if not append:
                os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

    def write_bytes(self, path: str, data: bytes) -> None:
        self._write(path, bytes(data), append=False)

    def write_text(self, path: str, data: str, encoding: str = "utf-8") -> None:
        self._write(path, data.encode(encoding), append=False)

    def append_text(self, path: str, data: str, encoding: str = "utf-8") -> None:
        self._write(path, data.encode(encoding), append=True)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a directory; with ``parents`` the missing ancestors of an allowed target too."""
        norm = self._check("fs.write", path, is_dir=True)
        if not norm:
            raise FileExistsError(errno.EEXIST, "the workspace root exists", ".")
        parts = norm.split("/")
        targets = ["/".join(parts[: i + 1]) for i in range(len(parts))] if parents else [norm]
        for target in targets:
            parent_fd, name = self._parent("fs.write", target)
            try:
                os.mkdir(name, _NEW_DIR_MODE, dir_fd=parent_fd)
            except FileExistsError:
                last = target == norm
                info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                if not stat_mode.S_ISDIR(info.st_mode):
                    raise FileExistsError(
                        errno.EEXIST, "exists and is not a directory", target
                    ) from None
                if last and not exist_ok:
                    raise FileExistsError(errno.EEXIST, "directory exists", target) from None
            finally:
                os.close(parent_fd)

    def remove(self, path: str) -> None:
        """Remove a file, a symlink itself, or an empty directory."""
        norm, _ = self._check_named("fs.write", path)
        if not norm:
            raise PermissionDenied(
                "fs.write", ".", "default deny", "the workspace root cannot be removed"
            )
        parent_fd, name = self._parent("fs.write", norm)
        is_dir = False
        try:
            # Decided again on what is there now: the job may have swapped a file for a folder.
            is_dir = stat_mode.S_ISDIR(
                os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
            )
            self._check("fs.write", path, is_dir=is_dir)
            (os.rmdir if is_dir else os.unlink)(name, dir_fd=parent_fd)
        except PermissionError as err:
            if isinstance(err, PermissionDenied):
                raise
            raise _kernel_refused(norm, "removed", is_dir=is_dir) from None
        except OSError as err:
            err.filename = norm
            raise
        finally:
            os.close(parent_fd)

    def rename(self, source: str, destination: str) -> None:
        """Rename within the workspace; both ends must be writable."""
        src, info = self._check_named("fs.write", source)
        if info is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", src)
        # The destination becomes what the source is: a folder rule (`y/`) allows a folder there.
        dst = self._check("fs.write", destination, is_dir=stat_mode.S_ISDIR(info.st_mode))
        if not src or not dst:
            raise PermissionDenied(
                "fs.write", ".", "default deny", "the workspace root cannot be renamed"
            )
        src_fd, src_name = self._parent("fs.write", src)
        try:
            dst_fd, dst_name = self._parent("fs.write", dst)
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except PermissionError:
                raise _kernel_refused(
                    src, "renamed", is_dir=stat_mode.S_ISDIR(info.st_mode)
                ) from None
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)


def _kernel_refused(norm: str, done: str, *, is_dir: bool) -> PermissionDenied:
    """The kernel refused a change the rules allow, most often on a folder a rule names itself.

    Landlock grants a folder rule (``x/``) the tree below ``x``; removing or renaming ``x``
    changes its parent, which granting would open to every sibling. The host creates such
    folders again before each run anyway.
    """
    if is_dir:
        parent = norm.rpartition("/")[0] or "."
        reason = (
            f"a folder a rule names ('{norm}/') is where the job's writes go: what is inside it"
            f" can be {done}, the folder itself cannot (that would change {parent!r}, which the"
            " job may not write)"
        )
    else:
        reason = (
            "the rules allow it, but the kernel grants whole folders and this change reaches"
            " outside the ones it granted (see 'What the kernel grants' in docs/permissions.md)"
        )
    return PermissionDenied("fs.write", norm, "kernel (Landlock)", reason)
