"""Redis leases: at most one holder cluster-wide (`SET NX PX`, renewed, released on exit)."""

from __future__ import annotations

import uuid
from importlib.resources import files
from typing import Any

import redis

_SCRIPTS: dict[str, str] = {
    name: (files("worker.dispatch") / f"lease_{name}.lua").read_text()
    for name in ("renew", "release", "release_many")
}


def lane_key(account_id: int) -> str:
    return f"siyu:lane:{account_id}"


def lane_queued_key(account_id: int) -> str:
    return f"siyu:lane-queued:{account_id}"


class Lease:
    """A named lease held by one token; `renew()` tells whether we still hold it."""

    def __init__(self, client: redis.Redis, key: str, ttl_ms: int) -> None:
        if ttl_ms < 100:
            raise ValueError("ttl_ms must be at least 100")
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex
        self._renew: Any = client.register_script(_SCRIPTS["renew"])
        self._release: Any = client.register_script(_SCRIPTS["release"])

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
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
