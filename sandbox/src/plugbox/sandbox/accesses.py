"""Which runtime calls a run made and how each was decided: the record behind denials and learn mode.

A :class:`RecordingDecider` sits between the runtime proxies (or the network broker) and the
policy. It answers exactly as the policy does and remembers each distinct verdict, so an outcome
can say what the job was refused (and by which rule) even when the job caught the
``PermissionDenied``, and the test harness's learn mode can derive the smallest permission set
from what a job really did.

What the child reports is informational: it comes from the job's own process, which plugin code
controls. Nothing is allowed or refused on the strength of this record; the decisions that count
were taken when the calls were made.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from plugbox.sandbox.outcome import MAX_ACCESSES, Access
from plugbox.sdk.permissions import Decider, Decision, Operation
from plugbox.sdk.permissions.hosts import normalize_host, special_address_reason
from plugbox.sdk.permissions.learn import FORM_RULES

_Key = tuple[str, str, bool, bool, str]


class RecordingDecider:
    """A :class:`Decider` that remembers every distinct verdict it hands out (bounded)."""

    __slots__ = ("_inner", "_seen", "truncated")

    def __init__(self, inner: Decider) -> None:
        self._inner = inner
        self._seen: dict[_Key, Access] = {}
        self.truncated = False

    def decide(self, operation: Operation, target: str, *, is_dir: bool = False) -> Decision:
        verdict = self._inner.decide(operation, target, is_dir=is_dir)
        self._remember(verdict, is_dir)
        return verdict

    def decide_resolved(self, target: str, address: str) -> Decision:
        verdict = self._inner.decide_resolved(target, address)
        self._remember(verdict, False)
        return verdict

    def _remember(self, verdict: Decision, is_dir: bool) -> None:
        key = (verdict.operation, verdict.target, is_dir, verdict.allowed, verdict.rule)
        if key in self._seen:
            return
        if len(self._seen) >= MAX_ACCESSES:
            self.truncated = True
            return
        self._seen[key] = Access.of(verdict, is_dir=is_dir)

    def accesses(self) -> tuple[Access, ...]:
        """What was decided, in the order it first happened."""
        return tuple(self._seen.values())

    def export(self) -> list[dict[str, Any]]:
        """The record as JSON data, for the child's result message."""
        return [access.model_dump() for access in self._seen.values()]


def merge_accesses(*groups: Iterable[Access]) -> tuple[tuple[Access, ...], bool]:
    """Several records as one, without repeats and within :data:`MAX_ACCESSES` (and whether cut)."""
    merged: dict[Access, None] = {}
    truncated = False
    for group in groups:
        for access in group:
            if len(merged) >= MAX_ACCESSES and access not in merged:
                truncated = True
                continue
            merged[access] = None
    return tuple(merged), truncated


def parse_accesses(raw: Any) -> tuple[Access, ...]:
    """Accesses a child reported, validated and bounded; anything malformed is dropped."""
    if not isinstance(raw, list):
        return ()
    parsed: list[Access] = []
    for item in raw[:MAX_ACCESSES]:
        try:
            parsed.append(Access.model_validate(item))
        except ValueError:
            continue
    return tuple(parsed)


class LearningDecider:
    """Learn mode: lets every well-formed call through, whatever the declared rules say.

    Wrap a :class:`RecordingDecider` over the declared policy: the record keeps the declared
    verdict (so learn mode can say what is missing and what is unused) while the call proceeds.
    Calls refused for their form (``..`` in a path, a program given as a path, a malformed host)
    stay refused, and so does a connection to a loopback, private or link-local address that the
    declared rules do not name: learning never opens the host's own services.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: Decider) -> None:
        self._inner = inner

    def decide(self, operation: Operation, target: str, *, is_dir: bool = False) -> Decision:
        verdict = self._inner.decide(operation, target, is_dir=is_dir)
        if verdict.allowed or verdict.rule in FORM_RULES:
            return verdict
        return verdict._replace(allowed=True, reason="allowed in learn mode")

    def decide_resolved(self, target: str, address: str) -> Decision:
        verdict = self._inner.decide_resolved(target, address)
        if verdict.allowed or verdict.rule in FORM_RULES:
            return verdict
        if special_address_reason(normalize_host(address)) is not None:
            return verdict
        return verdict._replace(allowed=True, reason="allowed in learn mode")
