"""``runtime.env``: the allowed environment variables, and nothing else.

The child's real environment is already scrubbed to the allow-list before plugin code runs; this
proxy answers from the values it was handed and still decides every call, so a denied name raises
``PermissionDenied`` (naming the rule) instead of quietly looking unset.
"""

from __future__ import annotations

from collections.abc import Mapping

from plugbox.sdk.permissions import Decider


class CheckedEnv:
    """The ``runtime.env`` proxy over a mapping already filtered by :func:`allowed_environment`."""

    def __init__(self, values: Mapping[str, str], decider: Decider) -> None:
        self._decider = decider
        self._values = dict(values)

    def get(self, name: str, default: str | None = None) -> str | None:
        self._decider.decide("env.read", name).raise_if_denied()
        return self._values.get(name, default)

    def names(self) -> list[str]:
        """Names of the allowed variables that are set."""
        return sorted(self._values)


def allowed_environment(source: Mapping[str, str], decider: Decider) -> dict[str, str]:
    """The subset of ``source`` a job may see: what a confined child's ``os.environ`` becomes."""
    return {k: v for k, v in source.items() if decider.decide("env.read", k).allowed}
