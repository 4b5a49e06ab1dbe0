"""plugbox.sandbox — enforcement: running a job in a confined, resource-bounded child process.

Policy (what is allowed) lives in :mod:`plugbox.sdk.permissions`; this package only makes it so.
It never imports :mod:`plugbox.host`.
"""

__all__: list[str] = []
