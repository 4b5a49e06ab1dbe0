"""The testing package's one door to :mod:`plugbox.sandbox` (the layering exception of ADR 0007).

The rest of the SDK never imports the sandbox; the harness must, because it runs jobs in it.
Every such import goes through this module, so the import-linter exception names one module, and
an environment with only ``plugbox-sdk`` gets one clear error saying what to install.
"""

from __future__ import annotations

MISSING_SANDBOX = (
    "running jobs in tests needs plugbox-sandbox, which plugbox-sdk's testing extra installs: "
    'pip install "plugbox-sdk[testing]"'
)

try:
    from plugbox.sandbox import (
        Access,
        ErrorInfo,
        Event,
        LogEntry,
        Outcome,
        RunRequest,
        SandboxRunner,
        run_in_process,
    )
    from plugbox.sandbox.accesses import LearningDecider
    from plugbox.sandbox.broker import NetBroker
    from plugbox.sandbox.net_request import NetRequest, Responder
    from plugbox.sandbox.request import request_for_job
except ModuleNotFoundError as err:
    if (err.name or "").startswith("plugbox.sandbox"):
        raise ModuleNotFoundError(MISSING_SANDBOX, name=err.name) from err
    raise

__all__ = [
    "MISSING_SANDBOX",
    "Access",
    "ErrorInfo",
    "Event",
    "LearningDecider",
    "LogEntry",
    "NetBroker",
    "NetRequest",
    "Outcome",
    "Responder",
    "RunRequest",
    "SandboxRunner",
    "request_for_job",
    "run_in_process",
]
