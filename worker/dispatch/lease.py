"""Redis leases: at most one holder cluster-wide (`SET NX PX`, renewed, released on exit).

A holder also knows, by its own monotonic clock, how long its lease has left for certain: the
time from just before the last successful acquire or renewal plus the TTL. A fence on that
(`dispatch.fence`) is what lets a lane send only while it provably holds its account.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import redis

_SCRIPTS: dict[str, str] = {
    name: (files("worker.dispatch") / f"lease_{name}.lua").read_text()
    for name in ("renew", "release", "release_many")
}


class Lease:
    """A named lease held by one token; `renew()` tells whether we still hold it."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl_ms: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_ms < 100:
            raise ValueError("ttl_ms must be at least 100")
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex
        self._clock = clock
        self._held_until = 0.0
        self._renew: Any = client.register_script(_SCRIPTS["renew"])
        self._release: Any = client.register_script(_SCRIPTS["release"])

    def acquire(self) -> bool:
        asked = self._clock()
        got = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        self._held_until = asked + self.ttl_ms / 1000 if got else 0.0
        return got

    def renew(self) -> bool:
        asked = self._clock()
        got = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        self._held_until = asked + self.ttl_ms / 1000 if got else 0.0
        return got

    def remaining_s(self) -> float:
        """Seconds the lease is certainly still ours (0 once a renewal failed)."""
        return max(0.0, self._held_until - self._clock())

    def release(self) -> None:
        self._held_until = 0.0
        self._release(keys=[self.key], args=[self.token])


def holder(client: redis.Redis, key: str) -> str | None:
    """The token currently holding `key`, if any."""
    value = client.get(key)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def release_many(client: redis.Redis, keys: list[str], token: str) -> int:
    """Release every key in `keys` that `token` still holds."""
    if not keys:
        return 0
    script: Any = client.register_script(_SCRIPTS["release_many"])
    return int(script(keys=keys, args=[token]))
