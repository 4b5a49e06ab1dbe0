"""The network broker: the parent performs every HTTP request a job makes, after checking it.

A confined child has no network of its own (a private network namespace), so ``runtime.net`` is
the only way out and the decision is taken where plugin code cannot reach: here. For each hop the
broker checks scheme, host and port, resolves the name *itself*, decides again on the resolved
address (so ``2130706433``, ``127.1`` or a name that resolves to 169.254.169.254 cannot sneak
through), connects to exactly the address it checked, and repeats all of it for every redirect.

A request runs on a thread of its own (:mod:`plugbox.sandbox.net_relay`), never on the run's
watch loop, and never past its deadline: each socket operation waits at most the time left, the
body is read a chunk at a time against the clock (a server trickling one byte a second cannot
stretch it), and :meth:`NetBroker.expire` / :meth:`NetBroker.abort` shut a connection down from
outside when a slow server holds a read past the deadline or the run ends.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

from plugbox.sandbox.net_errors import BodyTooLarge, TimeLimitError, net_failure
from plugbox.sandbox.net_request import MAX_RESPONSE_BODY, NetRequest, Responder
from plugbox.sdk import HttpResponse, PermissionDenied
from plugbox.sdk.permissions import Decider
from plugbox.sdk.permissions.hosts import normalize_host

MAX_REDIRECTS = 5
DEFAULT_MAX_BODY = MAX_RESPONSE_BODY
_CHUNK = 1 << 16
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = {301, 302, 303, 307, 308}
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
_CREDENTIALS = {"authorization", "proxy-authorization", "cookie"}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a pre-checked address; the Host header still names the host."""

    raw_sock: socket.socket | None = None

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.raw_sock = self.sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pre-checked address, verifying the certificate for the *name*."""

    raw_sock: socket.socket | None = None

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.raw_sock = raw  # until wrapped: a handshake that stalls can be shut down too
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
        self.raw_sock = self.sock


_Connection = _PinnedHTTPConnection | _PinnedHTTPSConnection

__all__ = ["MAX_REDIRECTS", "NetBroker", "TimeLimitError"]


class NetBroker:
    """Performs checked HTTP requests for one run.

    With a ``responder`` nothing leaves the machine: each hop is still checked (scheme, host,
    port, the rule that allows it) and then answered by the responder; names are not resolved,
    since no connection is made.
    """

    def __init__(
        self,
        decider: Decider,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        responder: Responder | None = None,
    ) -> None:
        self._decider = decider
        self._max_body = max_body
        self._responder = responder
        self._lock = threading.Lock()
        # Every open connection and the monotonic instant it must be done by.
        self._live: dict[_Connection, float] = {}
        self._aborted = False

    def perform(self, request: NetRequest, *, deadline: float | None = None) -> HttpResponse:
        """Perform ``request`` after checking every hop; done by ``deadline`` (monotonic) or
        :class:`TimeLimitError` (default: ``request.timeout`` from now)."""
        if deadline is None:
            deadline = time.monotonic() + request.timeout
        method = request.method.upper()
        url = request.url
        body = request.body
        headers = dict(request.headers)
        previous = ""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response, location = self._one_hop(method, url, headers, body, deadline)
            except PermissionDenied as denied:
                if not previous:
                    raise
                reason = f"{denied.reason}; " if denied.reason else ""
                raise PermissionDenied(
                    denied.operation,
                    denied.target,
                    denied.rule,
                    f"{reason}the server redirected {method} {previous} here",
                ) from None
            except (OSError, http.client.HTTPException) as err:
                if self._responder is not None:
                    raise  # a fake's own words (the harness names the request itself)
                raise net_failure(method, url, err, timeout=request.timeout) from None
            if location is None:
                return response
            previous, url = url, urljoin(url, location)
            if _origin(url) != _origin(previous):
                # Credentials were meant for the host the job named, not for wherever it
                # redirects (another allowed host, or the same one over plain http).
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise PermissionDenied(
            "net.connect",
            url,
            "redirect limit",
            f"{request.method.upper()} {request.url} was redirected more than {MAX_REDIRECTS}"
            " times (a loop?); request the final URL directly",
        )

    def expire(self, now: float) -> None:
        """Shut down every connection past its deadline (a read blocked on it wakes at once)."""
        with self._lock:
            late = [connection for connection, due in self._live.items() if now >= due]
        for connection in late:
            _shut(connection)

    def abort(self) -> None:
        """Shut down every connection and refuse new ones: the run is over."""
        with self._lock:
            self._aborted = True
            live = list(self._live)
        for connection in live:
            _shut(connection)

    def _one_hop(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, deadline: float
    ) -> tuple[HttpResponse, str | None]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise PermissionDenied(
                "net.connect", url, "scheme check", "only http and https URLs are allowed"
            )
        if parts.username is not None or parts.password is not None:
            raise PermissionDenied(
                "net.connect", url, "host check", "credentials in the URL are not allowed"
            )
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise PermissionDenied(
                "net.connect", url, "host check", "the port is not a number 1-65535"
            ) from None
        raw_host = parts.hostname or ""
        host_for_target = f"[{raw_host}]" if ":" in raw_host else raw_host
        target = f"{host_for_target}:{port}"
        self._decider.decide("net.connect", target).raise_if_denied()
        timeout = _time_left(deadline, url)
        if self._responder is not None:
            answer = self._responder(NetRequest(method, url, dict(headers), body, timeout))
            location = answer.headers.get("Location") or answer.headers.get("location")
            return answer, location if answer.status in _REDIRECTS else None
        host = normalize_host(raw_host)
        address = self._resolve_checked(target, host, port)
        connection_type = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        connection = connection_type(host, port, address, _time_left(deadline, url))
        with self._lock:
            if self._aborted:
                raise TimeLimitError(f"the run ended before the request to {url} was made")
            self._live[connection] = deadline
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
            connection.request(method, path, body=body, headers=sent)
            _settimeout(connection, _time_left(deadline, url))
            raw = connection.getresponse()
            content = self._read_body(raw, connection, deadline, url)
            response = HttpResponse(raw.status, dict(raw.getheaders()), content, url)
            location = raw.getheader("Location") if raw.status in _REDIRECTS else None
            return response, location
        except OSError as err:
            if time.monotonic() >= deadline and not isinstance(err, TimeLimitError):
                raise TimeLimitError(_late(url)) from None
            raise
        finally:
            with self._lock:
                self._live.pop(connection, None)
            connection.close()

    def _read_body(
        self,
        raw: http.client.HTTPResponse,
        connection: _Connection,
        deadline: float,
        url: str,
    ) -> bytes:
        """The body, a chunk at a time against the clock and the size cap."""
        content = bytearray()
        while True:
            _settimeout(connection, _time_left(deadline, url))
            chunk = raw.read1(_CHUNK)
            if not chunk:
                return bytes(content)
            content += chunk
            if len(content) > self._max_body:
                raise BodyTooLarge(self._max_body)

    def _resolve_checked(self, target: str, host: str, port: int) -> str:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        first_denial = None
        for info in infos:
            address = str(info[4][0])
            verdict = self._decider.decide_resolved(target, address)
            if verdict.allowed:
                return address
            first_denial = first_denial or verdict
        assert first_denial is not None
        first_denial.raise_if_denied()
        raise AssertionError("unreachable")


def _time_left(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeLimitError(_late(url))
    return left


def _late(url: str) -> str:
    return f"the request to {url} did not finish within its timeout (or the run's time left)"


def _settimeout(connection: _Connection, timeout: float) -> None:
    if connection.sock is not None:
        connection.sock.settimeout(timeout)


def _shut(connection: _Connection) -> None:
    sock = getattr(connection, "raw_sock", None)
    if sock is not None:
        # The plain socket's shutdown, also for TLS: the blocked reader gets EOF or an error,
        # and the TLS object is left to the thread that owns it.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
