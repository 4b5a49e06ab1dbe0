"""The host's decisions as JSON lines on stderr: ``{"at": ..., "event": "fired", ...}``.

One line per decision, flushed at once, so an operator's log collector (or a test) reads each as
it happens. See the event names in docs/scheduling.md and docs/http-api.md.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any


def emit(event: str, **fields: Any) -> None:
    """One structured line about a host decision."""
    sys.stderr.write(
        json.dumps({"at": datetime.now(UTC).isoformat(), "event": event, **fields}, default=str)
        + "\n"
    )
    sys.stderr.flush()
