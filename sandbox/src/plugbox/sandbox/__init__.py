"""plugbox.sandbox — enforcement: running a job in a confined, resource-bounded child process.

Policy (what is allowed) lives in :mod:`plugbox.sdk.permissions`; this package only makes it so.
It never imports :mod:`plugbox.host`.

* :class:`SandboxRunner` — the one runner API: confined child processes forked from a warm zygote;
* :func:`run_in_process` — the in-process debug mode (proxies enforced, no OS confinement);
* :class:`RunRequest` / :class:`RunContext` in, :class:`Outcome` out.
"""

from plugbox.sandbox.inprocess import run_in_process
from plugbox.sandbox.outcome import Access, Enforcement, ErrorInfo, Event, LogEntry, Outcome
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunContext, RunRequest
from plugbox.sandbox.runner import SandboxRunner

__all__ = [
    "DEFAULT_QUOTAS",
    "Access",
    "Enforcement",
    "ErrorInfo",
    "Event",
    "LogEntry",
    "Outcome",
    "RunContext",
    "RunRequest",
    "SandboxRunner",
    "run_in_process",
]
