"""The production `LimiterBackend`: `reserve.lua` on Redis, with Redis `TIME` as the clock.

Works with any `redis.Redis` client (TCP or unix socket). Keys share the account's hash tag,
`<prefix>:{<account_key>}:...`, so one script touches one cluster slot, and every key carries
a TTL: slots expire after the longest window, the last-send state a day after the last slot,
day counters a day after their local day ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis

from worker.errors import ServiceUnavailable
from worker.limiter.backend import DayQuota, Outcome, Reservation, check_request
from worker.limiter.model import Window

DEFAULT_PREFIX = "siyu:limiter"
_LUA = resources.files("worker.limiter").joinpath("reserve.lua").read_text(encoding="utf-8")


class RedisBackend:
    """Reservations in Redis; one registered Lua script does each reservation atomically."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_LUA)  # EVALSHA, loading the script if needed

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisBackend:
        """A backend on its own client for `redis://`, `rediss://` or `unix://` URLs."""
        return cls(redis.Redis.from_url(url), prefix)

    def keys(self, account_key: str, day_key: str = "") -> list[str]:
        """The script's KEYS for an account: slots, state and (for a local day) its counter."""
        base = f"{self.prefix}:{{{account_key}}}"
        return [f"{base}:slots", f"{base}:state", f"{base}:day:{day_key}"]

    def reserve(
        self,
        account_key: str,
        *,
        windows: Sequence[Window],
        gaps_ms: Sequence[int],
        open_from_ms: int,
        open_until_ms: int,
        day: DayQuota | None = None,
    ) -> Reservation:
        """Reserve up to `len(gaps_ms)` send times (see `worker.limiter.backend`)."""
        check_request(account_key, gaps_ms, open_from_ms, open_until_ms, day)
        args: list[int] = [open_from_ms, open_until_ms]
        if day is None:
            args += [0, 0, 0]
        else:
            seed = -1 if day.count_if_missing is None else day.count_if_missing
            args += [day.limit, day.end_ms, seed]
        args.append(len(windows))
        for window in windows:
            args += [window.span_ms, window.limit]
        args.extend(gaps_ms)
        keys = self.keys(account_key, day.key if day else "")
        try:
            reply: Any = self._script(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ServiceUnavailable(f"Redis is unreachable for rate limiting: {exc}") from exc
        outcome = Outcome(int(reply[0]))
        resume = int(reply[1]) if outcome in (Outcome.CLOSED, Outcome.DAY_FULL) else None
        return Reservation(tuple(int(t) for t in reply[2:]), outcome, resume)
