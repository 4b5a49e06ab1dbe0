"""Shared memory a run holds outside its resident sets: what the watchdog adds without a cgroup.

A memory cgroup charges every page a run allocates, wherever it lives. Without one the watchdog
sums resident sets, and the kernel can hold a run's memory where no resident set shows it: a
``memfd`` (or a file on tmpfs) filled with ``write()`` and never mapped is memory the run owns
— 1 GiB under a 128 MB quota went through unseen — and ``RLIMIT_AS`` does not apply to it.
:class:`SharedMemory` counts those objects through the run's open descriptors:

* every ``/proc/<pid>/fd/<n>`` that is a regular file on a memory-backed filesystem (tmpfs —
  which is where memfds live — ramfs, hugetlbfs) counts ``st_blocks * 512``, once per
  ``(st_dev, st_ino)`` however many descriptors and processes hold it;
* mapped pages of such an object are already in the resident set of each process that touched
  them (``RssShmem``): for a process that maps one, ``/proc/<pid>/smaps`` says how much, and that
  much is taken back out so the object counts exactly once, at its size;
* an object whose last descriptor was closed while a mapping keeps it alive keeps counting at the
  size it last had, as long as some process of the run still maps it.

What this cannot see, and why:

* pages of an object whose descriptor was closed *between two samples* while a mapping keeps it
  alive: only its mapped, touched pages show (in ``RssShmem``); the parent cannot learn the size
  of an object it never saw through a descriptor (``/proc/<pid>/map_files`` needs
  ``CAP_CHECKPOINT_RESTORE``);
* a descriptor in flight in a unix socket (``SCM_RIGHTS`` sent to itself, then closed): held by
  the socket buffer, in no process's fd table — measured: a 96 MiB memfd sent that way is not
  counted. Seccomp cannot look inside ``sendmsg``; refusing ``memfd_create`` when no memory
  cgroup holds the run is what would close it at the kernel;
* a process that made itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): its ``fd`` and
  ``smaps`` need ptrace access an unprivileged host lacks. It is reported in :attr:`Held.hidden`,
  for the watchdog to treat as over the quota;
* files written into a job's writable directory on a tmpfs and closed: they are the job's
  output and outlive the run, like files on disk. Counting them would mean walking the
  directories every sample (cost grows with whatever the job creates) or watching the mount's
  free space (other writers would kill the run): neither is sound, so the host is told instead
  (:func:`on_memory_filesystem`). ``RLIMIT_FSIZE`` bounds each file, not their number.

SysV segments and POSIX queues are refused by seccomp. Shared anonymous mappings are in
``RssShmem`` and counted once per process that touched them, as resident sets always were.

Cost per sample (``tests/benchmarks/bench_tree_sampler.py``): a readlink per descriptor (~2 µs),
a stat only for a memfd or a file on a memory filesystem, ``maps`` and then ``smaps`` only for a
process that maps shared memory while the run holds such an object; at most
:data:`MAX_DESCRIPTORS_PER_SAMPLE` descriptors per sample.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass

__all__ = ["Held", "SharedMemory", "on_memory_filesystem"]

#: Filesystems whose regular files are memory. Not ``devtmpfs``: only root creates files in
#: ``/dev`` and Landlock grants no job a write there, while every run holds ``/dev/null`` open.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "hugetlbfs"})

#: Descriptors inspected per sample, over the whole run (~2 µs each): beyond it the remaining
#: processes are reported hidden rather than letting one run stall its own watchdog.
MAX_DESCRIPTORS_PER_SAMPLE = 20_000

ObjectKey = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True, slots=True)
class Held:
    """One sample of what :class:`SharedMemory` found.

    ``extra_bytes`` is what to add to the sum of the run's resident sets: the size of every
    memory-backed object the run holds, minus the part of it already counted as mapped (it may
    be negative: pages several processes map are then counted once).
    ``hidden`` is how many live processes of the run could not be inspected (not dumpable, or
    past :data:`MAX_DESCRIPTORS_PER_SAMPLE`).
    """

    extra_bytes: int
    objects: int
    hidden: int


class SharedMemory:
    """Memory-backed files held by one run, sampled by the parent; one instance per run."""

    def __init__(self, root_pid: int) -> None:
        self._mounts = _Mounts(root_pid)
        self._last_size: dict[ObjectKey, int] = {}

    def sample(self, shmem_by_pid: dict[int, int]) -> Held:
        """Inspect the live processes in ``shmem_by_pid`` (pid → its ``RssShmem`` in bytes)."""
        sizes: dict[ObjectKey, int] = {}
        hidden = 0
        budget = MAX_DESCRIPTORS_PER_SAMPLE
        for pid in shmem_by_pid:
            inspected = self._scan_descriptors(pid, sizes, budget)
            if inspected is None:
                hidden += 1
            else:
                budget -= inspected
        tracked = sizes.keys() | self._last_size.keys()
        mapped: dict[ObjectKey, int] = {}
        if tracked:
            for pid, shmem in shmem_by_pid.items():
                if shmem:
                    _add_mapped(pid, tracked, mapped)
        # An object seen through a descriptor counts at its allocated size, exactly once: what
        # processes map of it is taken out of their resident sets (may be negative: it dedups
        # pages several processes map). One only mapped now counts at least at its last size.
        extra = sum(size - mapped.get(key, 0) for key, size in sizes.items())
        for key in self._last_size.keys() - sizes.keys():
            if key in mapped:  # its descriptors are closed, a mapping keeps it alive
                sizes[key] = max(self._last_size[key], mapped[key])
                extra += sizes[key] - mapped[key]
        self._last_size = sizes
        return Held(extra, len(sizes), hidden)

    def _scan_descriptors(self, pid: int, sizes: dict[ObjectKey, int], budget: int) -> int | None:
        """Add ``pid``'s memory-backed open files to ``sizes``; how many descriptors that took.

        ``None`` when they cannot all be read: not dumpable (an unprivileged parent lacks the
        ptrace access ``/proc/<pid>/fd`` needs) or more than ``budget`` of them.
        """
        try:
            directory = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except PermissionError:
            return None
        except OSError:
            return 0  # gone since it was listed
        try:
            names = os.listdir(directory)
            if len(names) > budget:
                return None
            for name in names:
                try:
                    # readlink (2 µs) sorts out pipes, sockets and disk files; only a file that
                    # may be memory pays for a stat (4 µs).
                    target = os.readlink(name, dir_fd=directory)
                    if not self._mounts.may_be_memory(target):
                        continue
                    info = os.stat(name, dir_fd=directory)
                except OSError:
                    continue  # closed since the listing
                if stat.S_ISREG(info.st_mode):
                    key = (info.st_dev, info.st_ino)
                    sizes[key] = max(sizes.get(key, 0), info.st_blocks * 512)
            return len(names)
        except OSError:
            return 0
        finally:
            os.close(directory)


def on_memory_filesystem(path: str) -> bool:
    """Whether ``path`` lies on tmpfs, ramfs or hugetlbfs, by this process's mount table.

    For the host to say so when a job's writable directory is memory and no memory cgroup holds
    the run: files written there and closed are counted by nobody (see the module docstring).
    """
    return _Mounts(os.getpid()).on_memory(os.path.realpath(path))


class _Mounts:
    """Which descriptor targets live on a memory filesystem, from the run's ``mountinfo``.

    A job cannot mount anything (seccomp refuses the mount calls and ``unshare``), so the table is
    read once per run; a path belongs to the mount with the longest matching mount point.
    """

    def __init__(self, root_pid: int) -> None:
        self._root_pid = root_pid
        self._table: list[tuple[str, bool]] | None = None
        self._by_target: dict[str, bool] = {}

    def may_be_memory(self, target: str) -> bool:
        known = self._by_target.get(target)  # most targets repeat: /dev/null, the same files
        if known is None:
            if len(self._by_target) > 4096:
                self._by_target.clear()  # bounded, whatever a job opens
            known = self._by_target[target] = self._classify(target)
        return known

    def _classify(self, target: str) -> bool:
        if target.startswith("/memfd:"):
            return True  # memfds live on the kernel's internal tmpfs, in no mount table
        if not target.startswith("/"):
            return False  # pipe:[…], socket:[…], anon_inode:[…]
        return self.on_memory(target)

    def on_memory(self, path: str) -> bool:
        if self._table is None:
            self._table = _read_mounts(self._root_pid)
        for mount_point, memory in self._table:
            if path == mount_point or path.startswith(mount_point.rstrip("/") + "/"):
                return memory
        return False


def _read_mounts(pid: int) -> list[tuple[str, bool]]:
    """``(mount point, is memory)`` for every mount, longest mount point first."""
    for source in (f"/proc/{pid}/mountinfo", "/proc/self/mountinfo"):
        try:
            with open(source, "rb") as mountinfo:
                raw = mountinfo.read().decode(errors="replace")
            break
        except OSError:
            continue
    else:
        return []
    table = []
    for line in raw.splitlines():
        # "id parent major:minor root mount-point options [optional…] - fstype source super"
        fields = line.split()
        with contextlib.suppress(ValueError, IndexError):
            fs_type = fields[fields.index("-") + 1]
            mount_point = _unescape(fields[4])
            table.append((mount_point, fs_type in MEMORY_FILESYSTEMS))
    table.sort(key=lambda entry: len(entry[0]), reverse=True)
    return table


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in octal (\040 …).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _add_mapped(pid: int, tracked: set[ObjectKey], mapped: dict[ObjectKey, int]) -> None:
    """Add the resident pages ``pid`` maps of each ``tracked`` object (from ``smaps``) to ``mapped``.

    ``smaps`` makes the kernel walk every page table (0.7 ms for a Python process here), so the
    cheaper ``maps`` (0.12 ms) is read first and ``smaps`` only when a tracked object is mapped.
    """
    try:
        with open(f"/proc/{pid}/maps", "rb") as maps:
            listed = maps.read()
    except OSError:
        return  # gone, or not dumpable: its RssShmem stays counted in full
    devices = {device for device, _ in tracked}
    pattern = rb" (?:%s) ([0-9]+) " % b"|".join(
        b"%02x:%02x" % (os.major(device), os.minor(device)) for device in devices
    )
    inodes = {inode for _, inode in tracked}
    if not any(int(found) in inodes for found in re.findall(pattern, listed)):
        return
    try:
        with open(f"/proc/{pid}/smaps", "rb") as smaps:
            raw = smaps.read()
    except OSError:
        return
    for match in _MAPPING.finditer(raw):
        major, minor, inode = match.group(1, 2, 3)
        key = (os.makedev(int(major, 16), int(minor, 16)), int(inode))
        if key in tracked:
            # A private mapping's copied-on-write pages are anonymous, not the object's.
            pages = int(match.group(4)) - int(match.group(5))
            mapped[key] = mapped.get(key, 0) + pages * 1024


# A mapping header with a non-zero inode, then its Rss and Anonymous lines (kB).
_MAPPING = re.compile(
    rb"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ ([0-9a-f]+):([0-9a-f]+) ([1-9][0-9]*)[^\n]*\n"
    rb"(?:(?![0-9a-f]+-)[^\n]*\n)*?Rss: +([0-9]+) kB\n"
    rb"(?:(?![0-9a-f]+-)[^\n]*\n)*?Anonymous: +([0-9]+) kB",
    re.MULTILINE,
)
