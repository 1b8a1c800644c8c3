"""Code that runs in child processes of the Redis limiter tests (importable under spawn)."""

from __future__ import annotations

import random
from typing import Any

from worker.limiter.limiter import AccountLimiter
from worker.limiter.model import Policy
from worker.limiter.redis_backend import RedisBackend


def reserve_many(
    url: str,
    prefix: str,
    account_key: str,
    policy: Policy,
    tz: str,
    batches: list[int],
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """Wait for every sibling, then reserve `batches` slots for one account; report them."""
    backend = RedisBackend.from_url(url, prefix)
    limiter = AccountLimiter(policy, account_key, tz, backend, rng=random.Random(seed))
    barrier.wait(timeout=60)
    times: list[float] = []
    for count in batches:
        times += limiter.reserve(count)
    results.put((seed, times))
    backend.client.close()
