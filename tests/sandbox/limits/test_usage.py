"""Tree-wide measurement: what the watchdog sees of a run, with and without a cgroup."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from plugbox.sandbox.limits import RunCgroup, TreeSampler, TreeUsage, cgroup_support
from plugbox.sdk.permissions import Quotas

if TYPE_CHECKING:
    from .conftest import Forked

MIB = 1024 * 1024
MakeCgroup = Callable[..., RunCgroup]
needs_cgroups = pytest.mark.skipif(
    cgroup_support().version is None, reason=f"no cgroups here: {cgroup_support().detail}"
)


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _two_holders(go_r: int, ready_w: int, cgroup: RunCgroup | None) -> Callable[[], None]:
    """A run of two processes each holding 40 MiB of touched memory until told to go."""

    def run() -> None:
        if cgroup is not None:
            cgroup.join()
        pid = os.fork()
        held = bytearray(40 * MIB)
        os.write(ready_w, b"r")
        os.read(go_r, 1)
        del held
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    return run


def _measure_two_holders(forked: Forked, cgroup: RunCgroup | None) -> TreeUsage:
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    started = forked.start(_two_holders(go_r, ready_w, cgroup))
    assert os.read(ready_r, 1) + os.read(ready_r, 1) == b"rr"
    usage = TreeSampler(started.pid, cgroup).sample()
    os.write(go_w, b"gg")
    started.wait()
    for fd in (go_r, go_w, ready_r, ready_w):
        os.close(fd)
    return usage


def test_tree_memory_without_a_cgroup_sums_resident_sets(forked: Forked) -> None:
    usage = _measure_two_holders(forked, None)
    assert usage.processes == 2
    assert usage.rss_mb >= 80


@needs_cgroups
def test_tree_memory_with_a_cgroup_counts_only_what_the_run_charged(
    forked: Forked, make_cgroup: MakeCgroup
) -> None:
    """Documented difference: resident set sizes count pages a forked child still shares with its
    parent (here: the test process) once per process; the cgroup charges each page once, to
    whoever first touched it."""
    cgroup = make_cgroup(Quotas(memory_mb=200))
    charged = _measure_two_holders(forked, cgroup)
    resident = _measure_two_holders(forked, None)
    assert charged.processes == 2
    assert 80 <= charged.rss_mb < 100
    assert resident.rss_mb > charged.rss_mb


def test_cpu_without_a_cgroup_includes_children_the_root_reaped(forked: Forked) -> None:
    """Three short-lived workers, each reaped by the run's root before any sample is taken: their
    CPU is in the root's children counters, and the sampler adds those."""
    done_r, done_w = os.pipe()
    go_r, go_w = os.pipe()

    def root() -> None:
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                _spin(0.3)
                os._exit(0)
            os.waitpid(pid, 0)
        os.write(done_w, b"d")
        os.read(go_r, 1)

    started = forked.start(root)
    assert os.read(done_r, 1) == b"d"
    sampler = TreeSampler(started.pid, None)
    usage = sampler.sample()
    os.write(go_w, b"g")
    started.wait()
    assert usage.processes == 1
    assert usage.cpu_ms >= 850
    assert sampler.cpu_ms == usage.cpu_ms


def test_cpu_without_a_cgroup_keeps_what_an_orphan_used(forked: Forked) -> None:
    """A worker orphaned from the tree (its parent exited) is gone from the walk; the sampler
    keeps its last reading instead of letting the total drop."""
    ready_r, ready_w = os.pipe()

    def root() -> None:
        if os.fork() == 0:
            os.write(ready_w, b"r")
            _spin(0.4)
            os._exit(0)
        time.sleep(0.3)

    started = forked.start(root)
    assert os.read(ready_r, 1) == b"r"
    sampler = TreeSampler(started.pid, None)
    time.sleep(0.2)
    first = sampler.sample()
    started.wait()  # the root exits; the worker is re-parented away from it
    time.sleep(0.3)
    later = sampler.sample()
    assert first.processes == 2
    assert first.cpu_ms > 0  # the worker spun; how much depends on how busy the machine is
    assert later.processes == 0
    assert later.cpu_ms >= first.cpu_ms
    assert sampler.cpu_ms == later.cpu_ms
    os.close(ready_r)
    os.close(ready_w)


@needs_cgroups
def test_cgroup_cpu_includes_processes_that_already_exited(
    forked: Forked, make_cgroup: MakeCgroup
) -> None:
    """Workers that started and ended between two samples, orphaned and reaped outside the run:
    invisible to a process walk, exact in the cgroup."""
    cgroup = make_cgroup(Quotas())

    def root() -> None:
        cgroup.join()
        for _ in range(2):
            if os.fork() == 0:
                if os.fork() == 0:
                    _spin(0.25)
                os._exit(0)
        time.sleep(0.8)

    started = forked.start(root)
    sampler = TreeSampler(started.pid, cgroup)
    ended = started.wait()
    assert ended.exit_code == 0
    # The grandchildren need 0.25 s of CPU each, which on a busy machine takes longer than the
    # root's 0.8 s of sleep: wait for them to end, or this measures a run still going.
    deadline = time.monotonic() + 20
    while cgroup.pids():
        assert time.monotonic() < deadline, "the workers never ended"
        time.sleep(0.01)
    usage = sampler.sample()
    assert usage.processes == 0
    assert usage.cpu_ms >= 450


@needs_cgroups
def test_cgroup_peak_catches_a_spike_between_samples(
    forked: Forked, make_cgroup: MakeCgroup
) -> None:
    cgroup = make_cgroup(Quotas(memory_mb=200))
    sampler = TreeSampler(0, cgroup)

    def spike() -> None:
        cgroup.join()
        spike = bytearray(120 * MIB)
        del spike

    forked(spike)
    usage = sampler.sample()
    assert usage.rss_mb < 60
    assert sampler.peak_memory_mb >= 120


def test_peak_without_a_cgroup_is_the_largest_sample(forked: Forked) -> None:
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def spike() -> None:
        held = bytearray(100 * MIB)
        os.write(ready_w, b"r")
        os.read(go_r, 1)
        del held
        os.write(ready_w, b"r")
        os.read(go_r, 1)

    started = forked.start(spike)
    sampler = TreeSampler(started.pid, None)
    assert os.read(ready_r, 1) == b"r"
    high = sampler.sample()
    os.write(go_w, b"g")
    assert os.read(ready_r, 1) == b"r"
    low = sampler.sample()
    os.write(go_w, b"g")
    started.wait()
    assert high.rss_mb >= 100
    assert low.rss_mb < high.rss_mb - 50
    assert sampler.peak_memory_mb == high.rss_mb
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)


def test_sampling_a_run_that_is_gone_is_harmless(forked: Forked) -> None:
    ended = forked(lambda: None)
    sampler = TreeSampler(ended.pid, None)
    assert sampler.sample() == TreeUsage(rss_mb=0.0, cpu_ms=0, processes=0)
