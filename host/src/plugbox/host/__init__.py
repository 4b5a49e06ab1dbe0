"""plugbox.host — discovery, scheduling, the run store and the ``plugbox`` CLI.

Depends on :mod:`plugbox.sandbox` to run jobs and on :mod:`plugbox.sdk` for the contract.
"""

__all__: list[str] = []
