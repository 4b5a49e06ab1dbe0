"""Memory a run holds outside its resident sets: memfds and tmpfs files, seen without a cgroup.

Each test holds shared memory in a forked child in a way the resident set does not show (written
with ``write()``, never mapped) or shows twice (mapped by two processes), samples the tree with
:class:`TreeSampler` and no cgroup, and compares with a control sample of the same tree holding
nothing: the difference is what the sampler counted for the object.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from plugbox.sandbox.limits import TreeSampler, TreeUsage
from plugbox.sandbox.limits.shmem import on_memory_filesystem

if TYPE_CHECKING:
    from .conftest import Forked

MIB = 1024 * 1024
HELD_MB = 96
SHM = "/dev/shm"


def _fill(fd: int, mb: int) -> None:
    chunk = b"x" * MIB
    for _ in range(mb):
        os.write(fd, chunk)


def _sample_while(forked: Forked, hold: Callable[[int, int], None], ready: int = 1) -> TreeUsage:
    """Start ``hold(ready_w, go_r)`` in a child; sample its tree once ``ready`` processes of it
    say they hold; then let them go (every process of the tree waits for one byte on ``go_r``)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def child() -> None:
        hold(ready_w, go_r)
        os.read(go_r, 1)

    started = forked.start(child)
    try:
        for _ in range(ready):
            assert os.read(ready_r, 1) == b"r"
        return TreeSampler(started.pid, None).sample()
    finally:
        os.write(go_w, b"g" * 8)
        started.wait()
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)


def _nothing(ready: int, go: int) -> None:
    os.write(ready, b"r")


def _memfd_written(ready: int, go: int) -> None:
    memfd = os.memfd_create("held")
    _fill(memfd, HELD_MB)
    os.write(ready, b"r")


@pytest.fixture
def baseline(forked: Forked) -> float:
    """What the same kind of child measures holding nothing."""
    return _sample_while(forked, _nothing).rss_mb


def test_a_written_memfd_that_is_never_mapped_is_counted(forked: Forked, baseline: float) -> None:
    usage = _sample_while(forked, _memfd_written)
    assert usage.rss_mb - baseline >= HELD_MB * 0.95
    assert usage.hidden == 0


def test_a_memfd_held_by_two_processes_and_mapped_by_both_counts_once(
    forked: Forked, baseline: float
) -> None:
    def hold(ready: int, go: int) -> None:
        memfd = os.memfd_create("shared")
        _fill(memfd, HELD_MB)
        view = mmap.mmap(memfd, HELD_MB * MIB)
        view[:] = view[:]  # touch every page: all 96 MiB are in this resident set now
        if os.fork() == 0:  # the worker inherits the descriptor and the mapping
            view[:] = view[:]  # and touches every page too: in its resident set as well
            os.write(ready, b"r")
            os.read(go, 1)
            os._exit(0)
        os.write(ready, b"r")
        os.read(go, 1)  # holding the mapping and the descriptor until the sample is taken
        view.close()

    usage = _sample_while(forked, hold, ready=2)
    assert usage.processes == 2
    held = usage.rss_mb - 2 * baseline
    # Resident sets alone show the mapped pages in each process: 2 x 96. Counted once: 96.
    assert HELD_MB * 0.9 <= held <= HELD_MB * 1.4, (held, usage, baseline)


def test_a_memfd_closed_but_still_mapped_keeps_counting(forked: Forked, baseline: float) -> None:
    ready_r, ready_w = os.pipe()
    step_r, step_w = os.pipe()

    def child() -> None:
        memfd = os.memfd_create("kept")
        _fill(memfd, HELD_MB)
        view = mmap.mmap(memfd, MIB)  # one page mapped, the rest only written
        os.write(ready_w, b"r")
        os.read(step_r, 1)
        os.close(memfd)  # now only the mapping holds the 96 MiB
        os.write(ready_w, b"r")
        os.read(step_r, 1)
        view.close()  # and now nothing: the kernel frees it
        os.write(ready_w, b"r")
        os.read(step_r, 1)

    started = forked.start(child)
    sampler = TreeSampler(started.pid, None)
    readings = []
    for _ in range(3):
        assert os.read(ready_r, 1) == b"r"
        readings.append(sampler.sample().rss_mb - baseline)
        os.write(step_w, b"s")
    started.wait()
    for fd in (ready_r, ready_w, step_r, step_w):
        os.close(fd)
    held_open, only_mapped, freed = readings
    assert held_open >= HELD_MB * 0.95
    assert only_mapped >= HELD_MB * 0.95
    assert freed < HELD_MB * 0.2


@pytest.mark.skipif(not os.path.isdir(SHM), reason="no /dev/shm")
def test_a_tmpfs_file_held_open_is_counted_and_a_disk_file_is_not(
    forked: Forked, baseline: float, tmp_path: Path
) -> None:
    def on(directory: str) -> Callable[[int, int], None]:
        def hold(ready: int, go: int) -> None:
            with tempfile.TemporaryFile(dir=directory) as held:
                _fill(held.fileno(), HELD_MB)
                os.write(ready, b"r")
                os.read(go, 1)

        return hold

    if _fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is on {_fs_type(tmp_path)}: no disk directory to compare with")
    shm = _sample_while(forked, on(SHM)).rss_mb - baseline
    disk = _sample_while(forked, on(str(tmp_path))).rss_mb - baseline
    assert shm >= HELD_MB * 0.95
    assert disk < HELD_MB * 0.2  # page cache of a disk file is not the run's to count here


def _fs_type(path: Path) -> str:
    """The filesystem type of the mount ``path`` is on (longest mount point in /proc/mounts)."""
    best, kind = "", ""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, point, fs_type, *_ = line.split()
            inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fs_type
    return kind


@pytest.mark.skipif(not os.path.isdir(SHM), reason="no /dev/shm")
def test_a_directory_on_tmpfs_is_told_apart_from_one_on_disk(tmp_path: Path) -> None:
    if _fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is on {_fs_type(tmp_path)}: no disk directory to compare with")
    assert on_memory_filesystem(SHM)
    assert on_memory_filesystem(os.path.join(SHM, "not-there-yet"))
    assert not on_memory_filesystem(str(tmp_path))
