"""A table as rich prints it into a pipe, without rich: the fast path of the CLI's lists (ADR 0032).

Rendering a 50-row table through rich costs ``plugbox runs list`` more than everything else it
does (~100 ms: rich measures, pads, wraps and crops every cell as segments), and importing
``rich.table`` adds a start-up's worth more. Where rich would print no styles and wrap nothing —
output that is not a terminal, no colour forced, UTF-8, every cell printable ASCII, the whole
table narrower than the console — its output is fixed: the ``HEAVY_HEAD`` box, one space of
padding, each column as wide as its widest cell, the title centred above. :func:`plain_table`
writes exactly that and answers ``None`` for everything else, where the caller prints through
rich. ``tests/host/test_cli_fastread.py`` compares the two byte for byte.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

#: How wide the CLI's console is where output is not a terminal and $COLUMNS is unset: a log
#: file or ``| grep`` wants whole ids and times, not rich's default of 80 columns.
PIPED_WIDTH = 200
#: What makes rich treat a pipe as a terminal, colour it or size it otherwise: where one is
#: set, rich prints the table.
_RICH_ENVIRONMENT = (
    "COLUMNS",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
)
_PRINTABLE_ASCII = re.compile("[ -~]*")


def plain_width(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> int | None:
    """The width of the CLI's console on ``stream`` (stdout) if rich would print plain text
    there — not a terminal, UTF-8, nothing in ``env`` that changes that — else None.

    Decided without importing rich (its import is a start-up's worth of ``runs list``), and
    conservatively: any doubt leaves the table to rich.
    """
    stream = sys.stdout if stream is None else stream
    env = os.environ if env is None else env
    if any(name in env for name in _RICH_ENVIRONMENT):
        return None
    isatty = getattr(stream, "isatty", None)
    if isatty is None or isatty():
        return None
    if not (getattr(stream, "encoding", None) or "").lower().startswith("utf"):
        return None  # rich would swap in an ASCII box
    return PIPED_WIDTH


def plain_table(
    width: int | None,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    min_widths: Mapping[int, int] | None = None,
) -> str | None:
    """What rich prints for ``Table(*headers, title=title)`` with ``rows`` on a plain console
    ``width`` wide (:func:`plain_width`), or None when rich would wrap or measure anything
    differently, or ``width`` is None (then print through rich)."""
    if width is None:
        return None
    cells = [title, *headers, *(cell for row in rows for cell in row)]
    if not all(_PRINTABLE_ASCII.fullmatch(cell) for cell in cells):
        return None  # wide, combining or escaped characters: rich measures those
    if any(len(row) != len(headers) for row in rows):
        return None
    minimum = min_widths or {}
    widths = [
        max(minimum.get(n, 0), len(header), *(len(row[n]) for row in rows))
        for n, header in enumerate(headers)
    ]
    total = sum(widths) + 3 * len(widths) + 1
    if total > width or len(title) > total:
        return None  # rich would shrink columns and wrap cells

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for width in widths) + right

    def cells_line(edge: str, values: Sequence[str]) -> str:
        padded = (f" {value.ljust(width)} " for value, width in zip(values, widths, strict=True))
        return edge + edge.join(padded) + edge

    margin = (total - len(title)) // 2
    lines = [
        " " * margin + title + " " * (total - len(title) - margin),
        line("┏", "━", "┳", "┓"),
        cells_line("┃", headers),
        line("┡", "━", "╇", "┩"),
        *(cells_line("│", row) for row in rows),
        line("└", "─", "┴", "┘"),
    ]
    return "".join(f"{text}\n" for text in lines)
