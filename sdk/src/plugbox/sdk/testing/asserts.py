"""``assert_denied`` / ``assert_allowed``: check a verdict and show the rule that reached it.

Two kinds of subject. A run (:class:`RunResult` or :class:`Outcome`) is checked against its
access record, which keeps every refused call even when the job caught the ``PermissionDenied``.
A job, a :class:`Permissions` or a mapping is checked statically: the call is decided against
the declared permissions (narrowed by ``grants``) with the same pure function the sandbox uses,
and nothing runs. A failure message names the deciding rule and lists what the run was refused
and allowed, so the fix is visible without re-running with prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plugbox.sdk.jobs import JobDeclaration, get_job
from plugbox.sdk.manifest import Manifest
from plugbox.sdk.permissions import (
    Operation,
    Permissions,
    as_permissions,
    decide,
    effective_policy,
)
from plugbox.sdk.testing._sandbox import Access, Outcome
from plugbox.sdk.testing.result import RunResult

#: What a static check decides against: a job (its declared permissions) or a permission set.
Declared = Permissions | Mapping[str, Any] | JobDeclaration | Callable[..., Any]
Subject = RunResult | Outcome | Declared


def assert_denied(
    subject: Subject,
    operation: Operation,
    target: str,
    *,
    rule: str | None = None,
    is_dir: bool | None = None,
    grants: Sequence[Permissions | Mapping[str, Any]] = (),
    manifest: Manifest | None = None,
) -> Access:
    """Assert that ``operation`` on ``target`` was (or would be) refused; return that verdict.

    ``rule`` is text the deciding rule must contain: ``"default deny"``, ``"fs[0].deny[0]"``,
    ``"operator grant[0]"``. ``is_dir`` (None: either) tells directory calls apart. For a job,
    ``manifest`` adds the plugin-level permissions and ``grants`` narrow as an operator would.
    """
    return _check(subject, operation, target, False, rule, is_dir, grants, manifest)


def assert_allowed(
    subject: Subject,
    operation: Operation,
    target: str,
    *,
    rule: str | None = None,
    is_dir: bool | None = None,
    grants: Sequence[Permissions | Mapping[str, Any]] = (),
    manifest: Manifest | None = None,
) -> Access:
    """Assert that ``operation`` on ``target`` was (or would be) allowed; see :func:`assert_denied`."""
    return _check(subject, operation, target, True, rule, is_dir, grants, manifest)


def _check(
    subject: Subject,
    operation: Operation,
    target: str,
    allowed: bool,
    rule: str | None,
    is_dir: bool | None,
    grants: Sequence[Permissions | Mapping[str, Any]],
    manifest: Manifest | None,
) -> Access:
    if isinstance(subject, RunResult | Outcome):
        if grants or manifest is not None:
            raise TypeError("grants= and manifest= apply to a job or permissions, not to a run")
        outcome = subject.outcome if isinstance(subject, RunResult) else subject
        return _check_run(outcome, operation, target, allowed, rule, is_dir)
    return _check_static(subject, operation, target, allowed, rule, is_dir, grants, manifest)


def _check_static(
    subject: Declared,
    operation: Operation,
    target: str,
    allowed: bool,
    rule: str | None,
    is_dir: bool | None,
    grants: Sequence[Permissions | Mapping[str, Any]],
    manifest: Manifest | None,
) -> Access:
    declared, what = _declared(subject, manifest)
    narrowed = [as_permissions(grant) for grant in grants]
    policy = effective_policy(declared, *narrowed)
    verdict = policy.decide(operation, target, is_dir=bool(is_dir))
    access = Access.of(verdict, is_dir=bool(is_dir))
    if access.allowed != allowed:
        want = "allowed" if allowed else "denied"
        hint = ""
        if is_dir is None and policy.decide(operation, target, is_dir=True).allowed == allowed:
            # A folder rule ("x/") decides a folder and a file apart; the job's call knows which.
            hint = f"; as a folder it would be {want}: pass is_dir=True to decide it as one"
        raise AssertionError(
            f"expected {operation} {target!r} to be {want} by {what}, but it is"
            f" {_verdict(access)}{hint}"
        )
    if rule is not None and rule not in access.rule:
        raise AssertionError(
            f"{operation} {target!r} is {'allowed' if allowed else 'denied'} by rule "
            f"{access.rule!r}, not by a rule containing {rule!r}"
        )
    return access


def _check_run(
    outcome: Outcome,
    operation: Operation,
    target: str,
    allowed: bool,
    rule: str | None,
    is_dir: bool | None,
) -> Access:
    want = "allowed" if allowed else "denied"
    wanted = {target, _normalised(operation, target)}
    seen = [access for access in outcome.accesses if _is_call(access, operation, wanted, is_dir)]
    hits = [access for access in seen if access.allowed == allowed]
    if not hits:
        found = ", ".join(_verdict(access) for access in seen) or "never made by the job"
        raise AssertionError(
            f"expected {operation} {target!r} to have been {want} in this run; it was {found}\n"
            + _record(outcome)
        )
    matching = [access for access in hits if rule is None or rule in access.rule]
    if not matching:
        rules = " and ".join(repr(access.rule) for access in hits)
        raise AssertionError(
            f"{operation} {target!r} was {want} by rule {rules}, not by a rule containing "
            f"{rule!r}\n" + _record(outcome)
        )
    return matching[0]


def _declared(subject: Declared, manifest: Manifest | None) -> tuple[Permissions, str]:
    if isinstance(subject, Permissions | Mapping):
        return as_permissions(subject), "these permissions"
    declaration = subject if isinstance(subject, JobDeclaration) else get_job(subject)
    if manifest is not None:
        declared = manifest.declared_permissions(declaration.id)
        return declared, f"job {declaration.id!r} of plugin {manifest.id!r}"
    return as_permissions(declaration.options.get("permissions")), f"job {declaration.id!r}"


def _is_call(access: Access, operation: str, targets: set[str], is_dir: bool | None) -> bool:
    """Whether ``access`` is the call asked about; a host without a port means any of its ports."""
    if access.operation != operation or (is_dir is not None and access.is_dir != is_dir):
        return False
    if access.target in targets:
        return True
    return operation == "net.connect" and access.target.rpartition(":")[0] in targets


def _normalised(operation: Operation, target: str) -> str:
    """``target`` as the sandbox records it (``./a//b`` as ``a/b``, ``API.Example.com`` lower-case)."""
    return decide(operation, target, Permissions()).target


def _verdict(access: Access) -> str:
    word = "allowed" if access.allowed else "denied"
    reason = f" ({access.reason})" if access.reason else ""
    return f"{word} by rule {access.rule!r}{reason}"


def _record(outcome: Outcome) -> str:
    """Every denial and access of a run with its rule: the context a failing assertion needs."""
    lines = [f"denials ({len(outcome.denials)}):"]
    lines += [f"  {_line(access)}" for access in outcome.denials] or ["  (none)"]
    lines.append(f"accesses ({len(outcome.accesses)}):")
    lines += [f"  {_line(access)}" for access in outcome.accesses] or ["  (none)"]
    if outcome.accesses_truncated:
        lines.append("  (the record was cut: later calls are missing)")
    return "\n".join(lines)


def _line(access: Access) -> str:
    kind = " (dir)" if access.is_dir else ""
    word = "allowed" if access.allowed else "denied "
    reason = f" ({access.reason})" if access.reason else ""
    return f"{word} {access.operation} {access.target!r}{kind} by {access.rule!r}{reason}"
