"""Standard Webhooks signatures (https://www.standardwebhooks.com/), sender side.

The receiver checks ``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(key,
"{webhook-id}.{webhook-timestamp}.{body}")), where the key is the secret without its ``whsec_``
prefix, base64-decoded — so any Standard Webhooks library verifies our deliveries unchanged.
The timestamp is integer Unix seconds; a delivery keeps its id across retries (receivers
de-duplicate by it) and gets a new timestamp and signature on each attempt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

from plugbox.host.config import ConfigError, HostConfig
from plugbox.sdk import Problem

PREFIX = "whsec_"
#: The spec asks for keys of 24 to 64 bytes.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
GENERATE = (
    "python3 -c 'import base64, os; print(\"whsec_\" + base64.b64encode(os.urandom(32)).decode())'"
)


def parse_secret(text: str) -> bytes:
    """The HMAC key a ``whsec_<base64>`` secret stands for; ``ValueError`` saying what is wrong."""
    if not text.startswith(PREFIX):
        raise ValueError(f"the secret must start with {PREFIX!r} (the Standard Webhooks format)")
    try:
        key = base64.b64decode(text[len(PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError(f"the part after {PREFIX!r} is not base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"the key is {len(key)} bytes; Standard Webhooks keys are {MIN_KEY_BYTES} to"
            f" {MAX_KEY_BYTES} bytes"
        )
    return key


def signature(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def load_secrets(config: HostConfig, env: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Each webhook's key by URL, read from the variables ``secret_env`` names.

    Raises :class:`ConfigError` naming ``webhooks[i].secret_env`` for every variable that is
    missing or malformed: a host never sends an unsigned or wrongly signed delivery.
    """
    env = os.environ if env is None else env
    keys: dict[str, bytes] = {}
    problems = []
    for index, hook in enumerate(config.webhooks):
        where = f"webhooks[{index}].secret_env"
        value = env.get(hook.secret_env)
        if not value:
            problems.append(
                Problem(
                    where,
                    f"the environment variable {hook.secret_env} is not set; set it to the"
                    f" receiver's whsec_ secret (make one with: {GENERATE})",
                )
            )
            continue
        try:
            keys[hook.url] = parse_secret(value)
        except ValueError as err:
            problems.append(Problem(where, f"{hook.secret_env}: {err}; make one with: {GENERATE}"))
    if problems:
        raise ConfigError(problems, config.source)
    return keys
