"""The one clock the code reads for stored times: timezone-aware UTC.

One helper instead of one per module, so a test (or a future freeze) finds every stored
timestamp going through the same place, and nobody stores a naive local time by mistake.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware (what every ``DatetimeField`` is compared with)."""
    return datetime.now(timezone.utc)
