"""``runtime.net``: HTTP(S) requests, performed by the parent's broker after it checks them.

This side only encodes the request and checks it early for a clear, fast error; the decision that
counts is the broker's (:mod:`plugbox.sandbox.broker`), taken outside the job's reach on the
resolved address and again on every redirect.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from plugbox.sandbox.net_request import DEFAULT_TIMEOUT_S, NetRequest, encode_params
from plugbox.sdk import HttpResponse, PermissionDenied
from plugbox.sdk.permissions import Decider

Transport = Callable[[NetRequest], HttpResponse]


class CheckedNet:
    """The ``runtime.net`` proxy; ``transport`` reaches the broker (in-process or over a socket)."""

    def __init__(self, decider: Decider, transport: Transport) -> None:
        self._decider = decider
        self._transport = transport

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | str | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        full_url = encode_params(url, params)
        parts = urlsplit(full_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermissionDenied(
                "net.connect", url, "scheme check", "only http and https URLs are allowed"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise PermissionDenied(
                "net.connect", url, "host check", "the port is not a number 1-65535"
            ) from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._decider.decide("net.connect", f"{host}:{port}").raise_if_denied()
        sent = dict(headers or {})
        body: bytes | None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        elif isinstance(data, str):
            body = data.encode()
        else:
            body = data
        request = NetRequest(method.upper(), full_url, sent, body, timeout or DEFAULT_TIMEOUT_S)
        return self._transport(request)

    def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", url, **kwargs)
