"""One HTTP request of a job as it crosses from the child to the broker, and nothing heavier.

Kept apart from :mod:`plugbox.sandbox.broker` so that the run child (``runtime.net``, the control
channel) needs no ``http.client`` or ``ssl``: the zygote imports what every child needs, and each
megabyte it holds is copied page table by page table on every fork.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from plugbox.sdk import HttpResponse

DEFAULT_TIMEOUT_S = 30.0
#: Largest request body a job may send: it crosses the control channel, base64-encoded, in one
#: frame, which the parent refuses above 4 MiB.
MAX_REQUEST_BODY = 2 * 1024 * 1024
#: Largest response body the broker reads for a job; past it the job gets an ``OSError``.
MAX_RESPONSE_BODY = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class NetRequest:
    """One request as the job asked for it (already encoded to bytes)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = DEFAULT_TIMEOUT_S


#: Answers a request that passed every check instead of the network (the test harness's fake
#: HTTP). It sees each hop separately, so a fake redirect is checked again like a real one.
Responder = Callable[[NetRequest], HttpResponse]


def encode_params(url: str, params: Mapping[str, str] | None) -> str:
    """Append query parameters to a URL (the one place runtime.net builds query strings)."""
    if not params:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)
