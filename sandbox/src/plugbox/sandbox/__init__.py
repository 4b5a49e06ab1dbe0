"""plugbox.sandbox — enforcement: running a job in a confined, resource-bounded child process.

Policy (what is allowed) lives in :mod:`plugbox.sdk.permissions`; this package only makes it so.
It never imports :mod:`plugbox.host`.

* :class:`SandboxRunner` — the one runner API: confined child processes forked from a warm zygote;
* :func:`run_in_process` — the in-process debug mode (proxies enforced, no OS confinement);
* :class:`RunRequest` / :class:`RunContext` in, :class:`Outcome` out.
"""

from typing import TYPE_CHECKING

from plugbox.sdk._lazy import lazy_exports

if TYPE_CHECKING:
    from plugbox.sandbox.inprocess import run_in_process
    from plugbox.sandbox.outcome import Access, Enforcement, ErrorInfo, Event, LogEntry, Outcome
    from plugbox.sandbox.request import DEFAULT_QUOTAS, RunContext, RunRequest
    from plugbox.sandbox.runner import SandboxRunner

# Names load on first use (PEP 562): the zygote imports submodules of this package for every run
# child, and an eager import here would put the runner, psutil, http.client and ssl into each
# fork for nothing.
_EXPORTS = {
    "Access": "plugbox.sandbox.outcome",
    "DEFAULT_QUOTAS": "plugbox.sandbox.request",
    "Enforcement": "plugbox.sandbox.outcome",
    "ErrorInfo": "plugbox.sandbox.outcome",
    "Event": "plugbox.sandbox.outcome",
    "LogEntry": "plugbox.sandbox.outcome",
    "Outcome": "plugbox.sandbox.outcome",
    "RunContext": "plugbox.sandbox.request",
    "RunRequest": "plugbox.sandbox.request",
    "SandboxRunner": "plugbox.sandbox.runner",
    "run_in_process": "plugbox.sandbox.inprocess",
}

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


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
