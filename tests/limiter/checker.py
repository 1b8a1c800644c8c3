"""A brute-force judge of reserved send times, written apart from the limiter it judges.

It uses `datetime` for local time (not `worker.limiter.localtime`), enumerates every sliding
window, and reports each broken rule as a sentence, so a failing test says what went wrong.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from worker.limiter.model import AccountLimits

WINDOWS_S = (("per_second", 1), ("per_minute", 60), ("per_hour", 3600))


def _local(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz)


def window_violations(times_ms: list[int], limits: AccountLimits) -> list[str]:
    """Every window [start, start + span) holding more sends than its limit.

    The fullest window of a span always starts at some send, so starting one at every send
    checks all of them.
    """
    found = []
    for name, span_s in WINDOWS_S:
        limit = getattr(limits, name)
        if limit is None:
            continue
        for i, start in enumerate(times_ms):
            inside = bisect.bisect_left(times_ms, start + span_s * 1000) - i
            if inside > limit:
                found.append(f"{inside} sends in the {span_s} s from {start} ms ({name}={limit})")
                break
    return found


def gap_violations(times_ms: list[int], limits: AccountLimits) -> list[str]:
    """Consecutive sends closer than min_gap_s."""
    least_ms = limits.min_gap_s * 1000 - 1e-6
    return [
        f"sends at {a} and {b} ms are {b - a} ms apart (min_gap_s={limits.min_gap_s})"
        for a, b in itertools.pairwise(times_ms)
        if b - a < least_ms
    ][:3]


def quiet_violations(times_ms: list[int], limits: AccountLimits, tz: ZoneInfo) -> list[str]:
    """Sends whose local wall-clock time lies in the quiet hours."""
    quiet = limits.quiet_hours
    if quiet is None:
        return []
    start_s, end_s = quiet.start_min * 60, quiet.end_min * 60
    found = []
    for ms in times_ms:
        local = _local(ms, tz)
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        inside = start_s <= second < end_s if start_s < end_s else not end_s <= second < start_s
        if inside:
            found.append(f"send at {local.isoformat()} is inside quiet hours {quiet}")
    return found[:3]


def day_violations(times_ms: list[int], limits: AccountLimits, tz: ZoneInfo) -> list[str]:
    """Local dates with more sends than per_day."""
    if limits.per_day is None:
        return []
    per_date = Counter(_local(ms, tz).date() for ms in times_ms)
    return [
        f"{count} sends on local date {day} (per_day={limits.per_day})"
        for day, count in sorted(per_date.items())
        if count > limits.per_day
    ]


def violations(times_s: Iterable[float], limits: AccountLimits, tz: ZoneInfo) -> list[str]:
    """Every rule of `limits` that the send times break (empty when all is well)."""
    times_ms = sorted(round(t * 1000) for t in times_s)
    return (
        window_violations(times_ms, limits)
        + gap_violations(times_ms, limits)
        + quiet_violations(times_ms, limits, tz)
        + day_violations(times_ms, limits, tz)
    )
