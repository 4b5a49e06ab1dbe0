"""``plugbox serve`` with its API: the daemon, and the HTTP server started once it runs."""

from __future__ import annotations

from plugbox.host.api.app import create_app
from plugbox.host.api.server import HttpServer, ListenError, is_loopback
from plugbox.host.config.models import parse_listen
from plugbox.host.daemon import Daemon, emit
from plugbox.host.services import Host
from plugbox.host.tokens import TokenStore


def serve(host: Host, listen: str | None) -> int:
    """Run the scheduler until a signal stops it, answering HTTP on ``listen`` (None: no API).

    Refuses (:class:`ListenError`) an address other machines can reach while no token exists:
    every endpoint but /healthz and /readyz needs one, so such an API would only be a door
    with no key, and the operator most likely forgot a step.
    """
    daemon = Daemon(host)
    if listen is None:
        return daemon.run()
    tokens = TokenStore(host.config.state_dir)
    address, _ = parse_listen(listen)
    if not is_loopback(address) and not tokens.exists():
        raise ListenError(
            f"refusing to listen on {listen}, which other machines can reach, while no API"
            " token exists; create one first (plugbox tokens create NAME --scopes read), or"
            " listen on 127.0.0.1"
        )
    server = HttpServer(listen)
    app = create_app(host, daemon, tokens, metrics=daemon.metrics)

    def started() -> None:
        server.start(app)
        emit("http_listening", address=server.address)

    daemon.on_started = started
    try:
        return daemon.run()
    finally:
        server.stop()
