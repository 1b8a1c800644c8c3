"""The property of `test_properties.py` again, on real Redis with its real clock."""

from __future__ import annotations

import random
from typing import cast
from zoneinfo import ZoneInfo

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.limiter.limiter import AccountLimiter
from worker.limiter.model import AccountLimits, Policy
from worker.limiter.redis_backend import RedisBackend

from .checker import violations
from .redis_support import unique_prefix
from .strategies import ZONES, account_limits, multipliers


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    limits=account_limits(),
    tz=st.sampled_from(ZONES),
    multiplier=multipliers,
    batches=st.lists(st.tuples(st.integers(1, 12), st.integers(0, 1)), min_size=1, max_size=15),
    seed=st.integers(0, 2**32),
)
def test_on_redis_no_window_gap_quiet_hour_or_day_cap_is_ever_broken(
    redis_client: object,
    limits: AccountLimits,
    tz: str,
    multiplier: float,
    batches: list[tuple[int, int]],
    seed: int,
) -> None:
    client = cast(redis.Redis, redis_client)
    backend = RedisBackend(client, unique_prefix())
    policy = Policy("random", limits)
    limiters = [
        AccountLimiter(
            policy, "acct", tz, backend, rng=random.Random(seed + i), rate_multiplier=multiplier
        )
        for i in range(2)
    ]
    reserved: list[float] = []
    for count, which in batches:
        times = limiters[which].reserve(count)
        assert len(times) == count
        reserved += times
    assert violations(reserved, limiters[0].limits, ZoneInfo(tz)) == []
    written = list(client.scan_iter(f"{backend.prefix}:*"))
    if written:
        client.delete(*written)
