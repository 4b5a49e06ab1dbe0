"""One router per area; :func:`plugbox.host.api.app.create_app` includes them."""
