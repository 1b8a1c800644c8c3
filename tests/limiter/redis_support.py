"""Helpers for limiter tests against real Redis."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import redis


def zone_near_noon() -> str:
    """A fixed-offset zone whose local time is now between 12:00 and 13:00.

    Tests that use the real clock (Redis TIME) run there, far from local midnight.
    """
    offset = (12 - time.gmtime().tm_hour) % 24
    if offset > 14:
        offset -= 24
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}"


def local_minutes(tz: str, at_s: float) -> int:
    local = datetime.fromtimestamp(at_s, ZoneInfo(tz))
    return local.hour * 60 + local.minute


def unique_prefix() -> str:
    return f"siyu:test:{uuid.uuid4().hex[:10]}"


def redis_now_s(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6
