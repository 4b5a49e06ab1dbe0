"""The HTTP API ``plugbox serve`` answers on (docs/http-api.md): a router per area in routes/."""

from plugbox.host.api.app import create_app as create_app

__all__ = ["create_app"]
