"""What every attack job shares: trying one thing and saying how it ended, and where its targets are.

A job reports ``{"control": ..., "attempts": {name: attempt(...)}}``. ``control`` is something only
code that really ran can know, so a crash or an import failure can never pass for a block.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def attempt(func: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call ``func``; ``ok`` and its value, or what stopped it (errno and exception type)."""
    try:
        value = func(*args, **kwargs)
    except OSError as err:
        return {"ok": False, "errno": err.errno, "error": f"{type(err).__name__}: {err}"}
    except Exception as err:
        return {"ok": False, "errno": None, "error": f"{type(err).__name__}: {err}"}
    return {"ok": True, "errno": None, "error": "", "value": repr(value)[:300]}


def outside(*parts: str) -> str:
    """A path beside the workspace (the suite puts ``victim/`` and ``state/`` there)."""
    return os.path.normpath(os.path.join(os.getcwd(), "..", *parts))


def victim(*parts: str) -> str:
    """A file or directory outside the workspace that the host user owns."""
    return outside("victim", *parts)


def report(control: Any, **attempts: dict[str, Any]) -> dict[str, Any]:
    return {"control": control, "attempts": attempts}
