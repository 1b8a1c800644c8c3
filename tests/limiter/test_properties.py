"""Property: whatever the policy, zone and arrivals, no reserved send breaks a rule.

Several limiters (as several processes would) share one memory backend and a fake clock;
the brute-force checker in `checker.py` judges every reserved time.
"""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.limiter.limiter import AccountLimiter
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import AccountLimits, Policy

from .checker import violations
from .strategies import ZONES, account_limits, arrivals, multipliers, start_instants
from .timeutil import FakeClock

LIMITERS = 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=account_limits(),
    tz=st.sampled_from(ZONES),
    start_s=start_instants,
    multiplier=multipliers,
    margin_ms=st.sampled_from([0, 50]),
    requests=arrivals(LIMITERS),
    seed=st.integers(0, 2**32),
)
def test_no_window_gap_quiet_hour_or_day_cap_is_ever_broken(
    limits: AccountLimits,
    tz: str,
    start_s: float,
    multiplier: float,
    margin_ms: int,
    requests: list[tuple[float, int, int, float | None]],
    seed: int,
) -> None:
    clock = FakeClock(start_s)
    backend = MemoryBackend(clock)
    policy = Policy("random", limits)
    limiters = [
        AccountLimiter(
            policy,
            "acct",
            tz,
            backend,
            clock=clock,
            rng=random.Random(seed + i),
            rate_multiplier=multiplier,
            window_margin_ms=margin_ms,
        )
        for i in range(LIMITERS)
    ]
    reserved: list[float] = []
    for advance_s, count, which, not_before_in in requests:
        clock.advance(advance_s)
        not_before = None if not_before_in is None else clock.now_s + not_before_in
        times = limiters[which].reserve(count, not_before=not_before)
        assert len(times) == count
        assert times == sorted(times)
        assert times[0] >= max(clock.now_s, not_before or 0) - 0.001
        reserved += times
    assert violations(reserved, limiters[0].limits, ZoneInfo(tz)) == []


def test_the_checker_catches_every_kind_of_violation() -> None:
    from worker.limiter.model import QuietHours

    shanghai = ZoneInfo("Asia/Shanghai")
    noon = 1_777_608_000.0  # 2026-05-01 12:00 Shanghai
    assert violations([noon, noon + 0.5, noon + 0.999], AccountLimits(per_second=2), shanghai)
    assert not violations([noon, noon + 0.5, noon + 1.0], AccountLimits(per_second=2), shanghai)
    assert violations([noon, noon + 1.9], AccountLimits(min_gap_s=2, max_gap_s=3), shanghai)
    night = AccountLimits(quiet_hours=QuietHours(11 * 60 + 59, 12 * 60 + 1))
    assert violations([noon], night, shanghai)
    assert not violations([noon + 60], night, shanghai)
    assert violations([noon, noon + 3600], AccountLimits(per_day=1), shanghai)
    assert not violations([noon, noon + 12 * 3600], AccountLimits(per_day=1), shanghai)
