"""Fake HTTP for the harness: canned responses per method and URL, given only to allowed requests.

A :class:`FakeHttp` is the ``responder`` the sandbox calls *after* its checks passed a request
hop (scheme, host, port and the rule that allows it; the next hop of a redirect is checked
again). So a fake never widens what a job may reach: a URL outside the job's permissions is
refused with the same ``PermissionDenied`` and rule as on the host, before any fake is consulted.

Nothing goes to the real network by default. A request that passed the checks but has no fake
fails inside the job with :class:`NoFakeResponseError` naming it and how to add a fake. With
``passthrough=True`` such a request goes out through the sandbox's real network broker instead,
which checks it again, resolved address included.
"""

from __future__ import annotations

import json as jsonlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from plugbox.sdk import HttpResponse
from plugbox.sdk.testing._sandbox import NetRequest, Responder

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSET: Any = object()


class NoFakeResponseError(ConnectionError):
    """A request passed the permission checks but the harness has no fake response for it.

    A ``ConnectionError`` (an ``OSError``), as a failed connection would be on the host. In a
    sandboxed run the job sees it as an ``OSError`` carrying this message.
    """

    def __init__(self, method: str, url: str, known: tuple[str, ...] = ()) -> None:
        listed = "; fakes: " + ", ".join(known) if known else "; no fakes are registered"
        super().__init__(
            f"no fake response for {method} {url} (the request passed the permission checks). "
            f'Add one in the test: plugbox.http.add("{method}", "{url}", json=...)'
            f", or FakeHttp(passthrough=True) to reach the real network{listed}"
        )
        self.method = method
        self.url = url


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    url: str
    key: tuple[str, str, int, str]
    query: tuple[tuple[str, str], ...] | None

    def matches(
        self, method: str, key: tuple[str, str, int, str], query: list[tuple[str, str]]
    ) -> bool:
        if self.method != method or self.key != key:
            return False
        return self.query is None or self.query == tuple(sorted(query))


class FakeHttp:
    """Canned HTTP responses, matched by method and URL; see the module docstring for the rules.

    A URL registered without a query string matches any query; with one, only that query (in
    any order). Adding the same method and URL again queues another response: they are given in
    order and the last one repeats, so a test can script retries or pages.
    """

    def __init__(self, *, passthrough: bool = False) -> None:
        self.passthrough = passthrough
        self._routes: dict[_Route, list[HttpResponse]] = {}
        self._served: dict[_Route, int] = {}
        self._requests: list[NetRequest] = []
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        url: str,
        *,
        status: int = 200,
        json: Any = _UNSET,
        text: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``method url`` with this response (at most one of ``json``, ``text``, ``body``).

        ``json`` is encoded and sent as ``application/json``; ``text`` as UTF-8 ``text/plain``.
        For a redirect give ``status=302, headers={"Location": "https://..."}``: the sandbox
        checks the next hop against the job's permissions like a real one.
        """
        present = (
            ("json", json is not _UNSET),
            ("text", text is not None),
            ("body", body is not None),
        )
        given = [name for name, is_given in present if is_given]
        if len(given) > 1:
            raise TypeError(f"give at most one of json=, text=, body= (got {', '.join(given)})")
        sent = dict(headers or {})
        if json is not _UNSET:
            content = jsonlib.dumps(json).encode()
            _default_header(sent, "Content-Type", "application/json")
        elif text is not None:
            content = text.encode()
            _default_header(sent, "Content-Type", "text/plain; charset=utf-8")
        else:
            content = body or b""
        route = _route(method, url)
        with self._lock:
            self._routes.setdefault(route, []).append(HttpResponse(status, sent, content, url))

    @property
    def requests(self) -> tuple[NetRequest, ...]:
        """Every request the job sent that passed the permission checks, in order (faked or not)."""
        with self._lock:
            return tuple(self._requests)

    def __call__(self, request: NetRequest) -> HttpResponse:
        """Answer ``request`` from the fakes (the sandbox's ``responder``); raise if none fits."""
        answer = self.answer(request)
        if answer is None:
            raise NoFakeResponseError(request.method, request.url, self._known())
        return answer

    def answer(self, request: NetRequest) -> HttpResponse | None:
        """The fake response for ``request`` (recording it), or ``None`` when none matches."""
        parts = urlsplit(request.url)
        key = _key(parts.scheme, parts.hostname, parts.port, parts.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        method = request.method.upper()
        with self._lock:
            self._requests.append(request)
            # A route with a query is more specific than one without: it wins.
            candidates = sorted(
                (r for r in self._routes if r.matches(method, key, query)),
                key=lambda r: r.query is None,
            )
            if not candidates:
                return None
            route = candidates[0]
            responses = self._routes[route]
            index = min(self._served.get(route, 0), len(responses) - 1)
            self._served[route] = index + 1
            canned = responses[index]
        return HttpResponse(canned.status, dict(canned.headers), canned.content, request.url)

    def responder(self, network: Responder | None) -> Responder:
        """The responder for one run: fakes first, then ``network`` when ``passthrough`` is on."""
        if not self.passthrough or network is None:
            return self
        real = network

        def answer(request: NetRequest) -> HttpResponse:
            faked = self.answer(request)
            return faked if faked is not None else real(request)

        return answer

    def _known(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(f"{route.method} {route.url}" for route in self._routes)


def _default_header(headers: dict[str, str], name: str, value: str) -> None:
    if not any(key.lower() == name.lower() for key in headers):
        headers[name] = value


def _route(method: str, url: str) -> _Route:
    parts = urlsplit(url)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an http(s) URL with a host, e.g. 'https://api.example.com/x'"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has a port that is not a number 1-65535") from None
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True))) if parts.query else None
    return _Route(method.upper(), url, _key(parts.scheme, parts.hostname, port, parts.path), query)


def _key(scheme: str, host: str | None, port: int | None, path: str) -> tuple[str, str, int, str]:
    scheme = scheme.lower()
    return scheme, (host or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0), path or "/"
