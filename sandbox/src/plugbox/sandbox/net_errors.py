"""What a job is told when a request it was allowed to make fails: method, URL, what, what to do.

The broker raises whatever ``socket``, ``ssl`` and ``http.client`` raise; a job reading
``[Errno 111] Connection refused`` learns neither which of its requests failed nor what to do.
:func:`net_failure` turns each such error into one of a few stable ``OSError`` types (what
docs/runtime.md promises a job can catch) with a message naming the request. The same text
reaches the job in the sandbox (where the relay prefixes the type) and in the debug mode.

The types, all ``OSError``: ``ConnectionRefusedError``, ``ConnectionError`` (reset, closed,
not HTTP), ``TimeoutError`` (:class:`~plugbox.sandbox.broker.TimeLimitError`),
``socket.gaierror`` (a name that does not resolve), ``ssl.SSLError`` (TLS), and a plain
``OSError`` (a body over the limit, anything else).
"""

from __future__ import annotations

import http.client
import socket
import ssl


class BodyTooLarge(OSError):  # noqa: N818 - the name reads as the condition
    """A response body past the broker's limit (``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than the {limit}-byte limit")
        self.limit = limit


class TimeLimitError(TimeoutError):
    """A request ran out of its time (its own timeout, or what was left of the run)."""


def net_failure(
    method: str, url: str, err: OSError | http.client.HTTPException, *, timeout: float
) -> OSError:
    """The error a job gets for ``method url`` failing with ``err`` (``timeout``: seconds it had)."""
    kind: type[OSError]
    if isinstance(err, TimeoutError):  # before ssl: a handshake can time out too
        kind = TimeLimitError
        what = f"no complete answer within {timeout:.3g} s"
        todo = (
            "Check that the service answers; pass a larger timeout= to the call, or raise the"
            " job's timeout if the run's time ran out"
        )
    elif isinstance(err, socket.gaierror):
        kind = socket.gaierror
        what = f"the host name does not resolve ({err.strerror or err})"
        todo = "Check the host name for typos, and that this machine's DNS knows it"
    elif isinstance(err, ConnectionRefusedError):
        kind = ConnectionRefusedError
        what = "the connection was refused: nothing listens on that host and port"
        todo = "Check that the service is running and that the URL's host and port are right"
    elif isinstance(err, ssl.SSLCertVerificationError):
        kind = ssl.SSLError
        what = f"the server's TLS certificate was not accepted ({err.verify_message or err})"
        todo = (
            "Check that the host name matches the certificate; certificates are verified"
            " against the system's CA store, and a self-signed one is refused"
        )
    elif isinstance(err, ssl.SSLError):
        kind = ssl.SSLError
        what = f"the TLS handshake failed ({err.reason or err})"
        todo = "Check that the port speaks HTTPS; for a plain HTTP service write http://"
    elif isinstance(err, BodyTooLarge):
        kind = OSError
        what = f"the response body is larger than the {err.limit}-byte limit of runtime.net"
        todo = "Ask the service for less at a time (a page, a range, a filter)"
    elif isinstance(err, http.client.HTTPException | ConnectionError):
        kind = ConnectionError
        what = f"the server closed the connection or did not answer in HTTP ({_text(err)})"
        todo = "Check the URL's scheme and port (https:// to an HTTP port?); retry if it was a blip"
    else:
        kind = OSError
        what = _text(err)
        todo = "Check the URL and that the service is reachable from this host"
    return kind(f"{method} {url} failed: {what}. {todo}.")


def _text(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
