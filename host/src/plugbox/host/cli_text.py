"""Printing what jobs and plugins wrote, so that it stays text on the operator's terminal.

Run records hold strings a job chose — error messages, tracebacks, log lines, event names,
output, results — and manifests hold strings a plugin chose (names, descriptions, ids of a
distribution). Printed as they are, they are instructions: rich reads ``[/]`` or ``[bold red]`` as
markup (and ``[/]`` alone crashes ``runs show`` with a ``MarkupError``), and the terminal obeys
escape sequences — OSC 52 writes the clipboard, ``ESC [2K`` erases the line that said "failed",
``ESC ]0;`` retitles the window — and bidi overrides make ``evil.py`` read as ``yp.live``.

So every CLI view prints such strings through :func:`inert` (or :func:`text`, its rich form):
control characters become visible escapes (``\\x1b``, ``\\x9b``, ``\\u202e``) and nothing is read
as markup. ``--json`` output goes through :func:`dumps`: ASCII-only (so the same characters arrive
as ``\\u001b``) and always valid JSON, even for a NaN that reached the store.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["dumps", "inert", "text"]

# C0 controls except \t and \n; DEL and the C1 controls (0x80-0x9f: 0x9b is a one-byte CSI);
# the Arabic letter mark, LRM/RLM, the bidi embeddings/overrides and isolates, which reorder
# what the reader sees without being seen themselves.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(value: object) -> str:
    """``value`` as text a terminal only displays: control and bidi characters escaped."""
    return _UNSAFE.sub(_visible, value if isinstance(value, str) else str(value))


def text(value: object, style: str = "") -> Text:
    """``value`` as a rich :class:`~rich.text.Text`: inert, and never parsed as markup.

    Use it for every job- or plugin-provided string handed to rich (``console.print``, table
    cells): a plain ``str`` there is read as markup.
    """
    from rich.text import Text  # here: `inert` and `dumps` serve output that rich never sees

    return Text(inert(value), style=style)


def dumps(data: Any, *, indent: int | None = None) -> str:
    """``data`` as JSON that every parser accepts and no terminal acts on.

    Non-finite floats (which ``json`` would write as the invalid ``NaN``) become ``null``;
    non-ASCII and control characters are written as ``\\uXXXX`` escapes.
    """
    try:
        return json.dumps(data, indent=indent, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(data), indent=indent, default=str, allow_nan=False)


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data
