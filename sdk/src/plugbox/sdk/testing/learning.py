"""Learn mode (:meth:`Harness.learn`): which permissions a job really needs, from one run.

The job runs in the sandbox with learning on (:attr:`RunRequest.learn`): every well-formed call
proceeds — the workspace is writable, any public host is reachable, every variable the test
passes in ``env`` is visible, commands run — and each is recorded with the verdict the declared
permissions would have given. The report then proposes the smallest set that allows exactly what
happened, lists declared rules nothing needed, and lists what the declared set refuses.

Learning stays inside the sandbox's kernel layers: the job still cannot leave the workspace,
open the network except through the broker, or reach loopback, private or link-local addresses
its declared rules do not name. Run it on your own job in a test workspace, never on a job you do
not trust with write access to that workspace.

Only calls through ``ctx.runtime`` are seen: code that bypasses the proxies is not recorded (and
in a normal run is stopped by the kernel layers anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plugbox.sdk.permissions import Permissions
from plugbox.sdk.permissions.learn import (
    Refusal,
    minimal_permissions,
    missing_calls,
    render_permissions,
    unused_rules,
)
from plugbox.sdk.testing._sandbox import RunRequest
from plugbox.sdk.testing.result import RunResult


@dataclass(frozen=True, slots=True)
class LearnReport:
    """What a learn run found. ``print(report)`` shows it as an author reads it."""

    job: str
    run: RunResult
    declared: Permissions
    permissions: Permissions
    unused: tuple[str, ...]
    missing: tuple[Refusal, ...]

    @property
    def calls(self) -> int:
        """How many distinct runtime calls the job made."""
        return len(self.run.accesses)

    def render(self) -> str:
        lines = [
            f"learn mode: {self.job} finished {self.run.status} after {self.calls} distinct "
            "runtime call(s).",
        ]
        if not self.run.ok and self.run.error is not None:
            lines.append(
                f"  The run failed ({self.run.error.type}: {self.run.error.message}); the "
                "proposal covers only what happened before that."
            )
        if self.run.outcome.accesses_truncated:
            lines.append("  The call record was cut at its limit; some calls are not covered.")
        lines += ["", "Smallest permission set that allows every call it made:", ""]
        lines += ["    " + line for line in render_permissions(self.permissions).splitlines()]
        lines.append("")
        if self.missing:
            lines.append("Needed but not declared (your manifest refuses these today):")
            lines += [f"  - {m.operation} {m.target!r}, refused by {m.rule}" for m in self.missing]
        else:
            lines.append("Everything it did is already allowed by its declared permissions.")
        if self.unused:
            lines.append(
                "Declared but never used in this run (drop the ones you wrote if no run needs"
                " them; rules that come with a preset go with the preset):"
            )
            lines += [f"  - {rule}" for rule in self.unused]
        else:
            lines.append("Every declared rule was used.")
        lines.append(
            "Paths are exact; widen one to a pattern (such as '/reports/*') where its name "
            "changes between runs."
        )
        return "\n".join(lines)

    __str__ = render


def learn_report(request: RunRequest, run: RunResult) -> LearnReport:
    """What the learn run ``run`` of ``request`` (its declared permissions) found."""
    declared = request.permissions
    accesses: Sequence[Any] = run.accesses
    context = request.context
    return LearnReport(
        job=f"{context.plugin_id}:{context.job_id}",
        run=run,
        declared=declared,
        permissions=minimal_permissions(accesses, base=declared),
        unused=unused_rules(declared, accesses),
        missing=missing_calls(accesses),
    )
