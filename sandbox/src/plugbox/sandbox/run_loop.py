"""The watch loop of one run: the parent's only thread for it, and one that never blocks.

Each turn it enforces the wall timeout, cancellation, tree-wide CPU, memory and process count;
drains the job's output; reads the child's frames with a non-blocking
:class:`~plugbox.sandbox.protocol.FrameReader`; hands network requests to the
:class:`~plugbox.sandbox.net_relay.NetRelay` (performed on threads of their own); and writes
replies only as fast as the child reads them. No child — one that announces a frame and stalls,
never reads its replies, or talks to a server that trickles — can hold this loop past the
run's deadline.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from plugbox.sandbox.limits.cgroups import RunCgroup
from plugbox.sandbox.limits.usage import TreeSampler
from plugbox.sandbox.net_relay import NetRelay
from plugbox.sandbox.protocol import FrameReader, HangUpError, ProtocolError, encode
from plugbox.sandbox.run_watch import RunWatch

SAMPLE_EVERY_S = 0.05

#: Consecutive samples that must find an uninspectable process before the run is ended for it.
HIDDEN_SAMPLES_TO_KILL = 2
#: Replies the child has not read yet; past it the child is not reading them, and is stopped.
MAX_UNREAD_REPLIES_BYTES = 32 * 1024 * 1024
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


@dataclass(frozen=True, slots=True)
class RunIO:
    """What the loop watches: the child's pid, its control socket and output pipe, its cgroup."""

    pid: int
    control: socket.socket
    out_r: int
    cgroup: RunCgroup | None
    exited: threading.Event


def watch_run(
    io: RunIO, watch: RunWatch, relay: NetRelay, start: float, cancel: threading.Event | None
) -> None:
    """Run the loop until the run is decided (``watch.over``) or its child is gone."""
    loop = _Loop(io, watch, relay, start)
    with loop.selector:
        loop.run(cancel)


class _Loop:
    def __init__(self, io: RunIO, watch: RunWatch, relay: NetRelay, start: float) -> None:
        self.io = io
        self.watch = watch
        self.relay = relay
        self.start = start
        self.reader = FrameReader()
        self.unread = bytearray()  # replies written to the child's socket as it reads them
        self.control_open = True
        self.wake: int | None = None
        self.selector = selectors.DefaultSelector()
        io.control.setblocking(False)
        os.set_blocking(io.out_r, False)
        self.selector.register(io.control, _READ, "control")
        self.selector.register(io.out_r, _READ, "output")

    def run(self, cancel: threading.Event | None) -> None:
        io, watch = self.io, self.watch
        sampler = TreeSampler(io.pid, io.cgroup)
        next_sample = self.start + SAMPLE_EVERY_S
        hidden_samples = 0
        while True:
            now = time.monotonic()
            if io.exited.is_set() and not self.control_open:
                return
            if watch.deadline is not None and now >= self.start + watch.deadline:
                watch.kill("timeout")
                return
            if cancel is not None and cancel.is_set():
                watch.kill("cancelled")
                return
            if now >= next_sample:
                usage = sampler.sample()
                watch.observe(usage.rss_mb, usage.cpu_ms, usage.processes)
                # Without a cgroup, a process the parent cannot inspect (it made itself
                # non-dumpable) holds memory nobody counts: over the quota by assumption — once
                # two samples in a row say so. A process is briefly uninspectable while it
                # execs an unreadable binary too; its RLIMIT_AS bounds it in between.
                hidden_samples = hidden_samples + 1 if usage.hidden else 0
                if hidden_samples >= HIDDEN_SAMPLES_TO_KILL and watch.quotas.memory_mb:
                    watch.kill("memory")
                if watch.over:
                    return
                next_sample = now + SAMPLE_EVERY_S
            if self.relay.in_flight:
                self.relay.expire(now)
            wait = SAMPLE_EVERY_S if self.control_open else 0.01
            if watch.deadline is not None:
                wait = max(0.0, min(wait, self.start + watch.deadline - now))
            for key, mask in self.selector.select(timeout=wait):
                self._ready(key.data, mask)
                if watch.over:
                    return
            if self.control_open:
                wanted = _READ | (_WRITE if self.unread else 0)
                if self.selector.get_key(io.control).events != wanted:
                    self.selector.modify(io.control, wanted, "control")
            if io.exited.is_set() and self.control_open and not self.selector.select(timeout=0):
                # The child is gone; anything it wrote is already readable or lost.
                return

    def _ready(self, what: str, mask: int) -> None:
        if what == "output":
            if not self.watch.read_output(self.io.out_r):
                self.selector.unregister(self.io.out_r)
        elif what == "replies":
            for reply in self.relay.replies():
                self._queue_reply(reply)
        else:
            if mask & _WRITE:
                self._write_replies()
            if mask & _READ:
                self._read_frames()

    def _read_frames(self) -> None:
        try:
            frames = self.reader.read(self.io.control)
        except HangUpError:
            # Mid-frame or not, the child's exit status says why it stopped talking.
            self._close_control()
            return
        except ProtocolError as err:
            self.watch.violate(str(err))
            return
        except OSError:
            self._close_control()
            return
        self.watch.received(self.reader.received)
        for message, size in frames:
            self._on_message(message, size)
            if self.watch.over:
                return

    def _on_message(self, message: dict[str, Any], size: int) -> None:
        kind = message.get("type")
        if kind == "log":
            self.watch.add_log(message, size)
        elif kind == "event":
            self.watch.add_event(message, size)
        elif kind == "result":
            self.watch.set_result(message, size)
        elif kind == "net":
            if self.wake is None:
                self.wake = self.relay.wake_fd()
                self.selector.register(self.wake, _READ, "replies")
            refused = self.relay.submit(message, self.watch.time_left(self.start))
            if refused is not None:
                self._queue_reply(refused)
        else:
            self.watch.violate(f"a frame of unknown type {str(kind)[:40]!r}")

    def _queue_reply(self, reply: dict[str, Any]) -> None:
        if not self.control_open:
            return
        self.unread += encode(reply)
        if len(self.unread) > MAX_UNREAD_REPLIES_BYTES:
            self.watch.violate(
                f"it left more than {MAX_UNREAD_REPLIES_BYTES} bytes of replies to its network "
                "requests unread"
            )
            return
        self._write_replies()

    def _write_replies(self) -> None:
        try:
            sent = self.io.control.send(self.unread)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.unread.clear()  # the child is gone; its exit status will say why
            return
        del self.unread[:sent]

    def _close_control(self) -> None:
        if self.control_open:
            self.selector.unregister(self.io.control)
            self.control_open = False
            self.unread.clear()
