"""How long an HTTP response asks the client to wait (`Retry-After` and its variants).

Shared by every HTTP client siyu has: the LLM client and the channel adapters.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime

import httpx


def retry_after_s(headers: httpx.Headers, now: datetime) -> float | None:
    """The wait a response asks for: `retry-after-ms`, else `Retry-After` in seconds or as an
    HTTP date (relative to `now`); None when absent or unreadable. Never negative."""
    if (ms := number(headers.get("retry-after-ms"))) is not None:
        return max(0.0, ms / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = number(value)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(0.0, seconds)


def number(value: object) -> float | None:
    """A finite number from a number or numeric string; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        found = float(value)
    except ValueError:
        return None
    return found if math.isfinite(found) else None
