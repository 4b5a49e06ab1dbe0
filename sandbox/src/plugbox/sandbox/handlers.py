"""Finding and calling a job's handler from its ``module:qualname`` reference."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any


def import_handler(reference: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (nested ``Class.method`` allowed)."""
    module_name, _, qualname = reference.partition(":")
    if not module_name or not qualname or "<locals>" in qualname:
        raise ImportError(
            f"{reference!r} is not an importable handler reference; jobs must be module-level "
            "functions ('package.module:function')"
        )
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportError(f"{module_name!r} has no attribute {qualname!r}") from None
    if not callable(target):
        raise ImportError(f"{reference!r} is not callable")
    return target  # type: ignore[no-any-return]


def call_handler(handler: Callable[..., Any], ctx: Any) -> Any:
    """Call a sync or async handler and return its value."""
    value = handler(ctx)
    if inspect.isawaitable(value):
        return asyncio.run(_await(value))
    return value


async def _await(awaitable: Any) -> Any:
    return await awaitable
