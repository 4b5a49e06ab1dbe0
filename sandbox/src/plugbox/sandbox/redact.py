"""The last step of every run: the operator's secrets taken out of everything the run produced.

Every outcome — sandboxed or in-process, the job's own result or a failure of the sandbox —
leaves the runner through :func:`finish_outcome`, and everything the host stores, serves, logs
or sends about a run (records, the API, the admin page, webhooks) is built from that outcome. So
this is the one place a secret's value is replaced: in the result, the error and its traceback,
log lines and their fields, events, printed output, and the accessed targets (a token in a URL's
query string).

What it catches: the value as the job got it, and the forms it most often takes by accident —
percent-encoded in a URL (``quote``, ``quote_plus``), and base64 of the value itself. What it cannot
catch is a job that disguises a value on purpose (reversed, split, hashed); such a job could send
it to a host it may reach anyway. Redaction guards the records against mistakes; the manifest's
``secrets`` list and the net rules are what limit a hostile plugin
(docs/adr/0025-operator-config-secrets-bindings.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from plugbox.sandbox.outcome import BoundRule, Outcome
from plugbox.sandbox.request import RunRequest


def finish_outcome(outcome: Outcome, request: RunRequest) -> Outcome:
    """``outcome`` with the run's resolved bindings noted and every secret value redacted."""
    if request.bindings:
        bound = tuple(BoundRule(rule=rule, value=value) for rule, value in request.bindings.items())
        enforcement = outcome.enforcement.model_copy(update={"bindings": bound})
        outcome = outcome.model_copy(update={"enforcement": enforcement})
    secrets = request.secret_values()
    if not secrets:
        return outcome
    return redact_outcome(outcome, secrets)


def redact_outcome(outcome: Outcome, secrets: Mapping[str, str]) -> Outcome:
    """``outcome`` with every form of every value in ``secrets`` replaced by its name."""
    replacements = _replacements(secrets)
    if not replacements:
        return outcome
    # Most runs never echo a secret: one search of the JSON text (where a value appears
    # JSON-escaped) spares them the walk, which costs ~50 µs per log line.
    text = outcome.model_dump_json()
    if not any(json.dumps(form)[1:-1] in text for form, _ in replacements):
        return outcome
    data = outcome.model_dump()
    cleaned = _walk(data, replacements)
    if cleaned == data:
        return outcome
    return Outcome.model_validate(cleaned)


def redact_text(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every form of every secret value replaced (for messages built elsewhere)."""
    result = text
    for value, mark in _replacements(secrets):
        result = result.replace(value, mark)
    return result


def _replacements(secrets: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs: dict[str, str] = {}
    for name, value in secrets.items():
        if not value:
            continue
        mark = f"[secret {name}]"
        encoded = base64.b64encode(value.encode()).decode().rstrip("=")
        for form in (value, quote(value, safe=""), quote_plus(value), encoded):
            pairs.setdefault(form, mark)
    # Longest first: a value that contains another secret is replaced whole.
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def _walk(value: Any, replacements: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for secret, mark in replacements:
            if secret in value:
                value = value.replace(secret, mark)
        return value
    if isinstance(value, dict):
        return {_walk(k, replacements): _walk(v, replacements) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_walk(item, replacements) for item in value)
    return value
