"""Package exports that load on first use (PEP 562), for packages whose imports must stay cheap.

``plugbox.sandbox`` is imported by the zygote for every run child, and ``plugbox.sdk.testing``
by pytest in every session: neither may pull in what only some callers need. Each lists
``name -> module`` and gets a module ``__getattr__`` and ``__dir__`` from :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_exports(
    namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose ``globals()`` is ``namespace``."""
    package = namespace["__name__"]

    def get_attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def list_names() -> list[str]:
        return sorted(exports)

    return get_attribute, list_names
