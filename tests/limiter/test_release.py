"""Released slots give their capacity back: windows, the day's budget, the time of a cut tail.

Each test runs on the memory backend (fake clock) and on real Redis. On Redis the slots are
reserved from a start ten minutes after Redis' own clock, so now cannot move them and the
times relative to that start are exact on both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast
from zoneinfo import ZoneInfo

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.limiter.backend import DayQuota, LimiterBackend, Outcome
from worker.limiter.limiter import AccountLimiter
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import AccountLimits, Policy, Window
from worker.limiter.redis_backend import RedisBackend

from .checker import violations
from .redis_support import redis_now_s, unique_prefix, zone_near_noon
from .strategies import ZONES, account_limits, start_instants
from .timeutil import FakeClock

T0_S = 1_780_000_000.0
FAR_MS = 2**52
PER_SECOND_1 = (Window(1000, 1),)


@dataclass
class Setup:
    backend: LimiterBackend
    start_ms: int  # reservations from here are placed exactly as from an empty account

    def reserve(
        self,
        count: int,
        windows: tuple[Window, ...],
        *,
        gap_ms: int = 0,
        day: DayQuota | None = None,
    ) -> list[int]:
        got = self.backend.reserve(
            "a",
            windows=windows,
            gaps_ms=[gap_ms] * count,
            open_from_ms=self.start_ms,
            open_until_ms=FAR_MS,
            day=day,
        )
        return [t - self.start_ms for t in got.times_ms]

    def release(
        self, relative_ms: list[int], windows: tuple[Window, ...], day: str | None = None
    ) -> None:
        times = [self.start_ms + t for t in relative_ms]
        self.backend.release("a", times_ms=times, windows=windows, day=day)


@pytest.fixture(params=["memory", "redis"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    if request.param == "memory":
        yield Setup(MemoryBackend(FakeClock(T0_S)), int(T0_S * 1000))
        return
    client = cast(redis.Redis, request.getfixturevalue("redis_client"))
    yield Setup(RedisBackend(client, unique_prefix()), int(redis_now_s(client) * 1000) + 600_000)


def test_a_released_slot_frees_its_place_in_the_window(setup: Setup) -> None:
    per_minute_3 = (Window(60_000, 3),)
    assert setup.reserve(3, per_minute_3) == [0, 0, 0]
    setup.release([0], per_minute_3)  # e.g. its recipient was skipped by a cap
    assert setup.reserve(2, per_minute_3) == [0, 60_000]


def test_two_slots_in_one_millisecond_go_back_one_at_a_time(setup: Setup) -> None:
    per_second_2 = (Window(1000, 2),)
    assert setup.reserve(2, per_second_2) == [0, 0]
    setup.release([0], per_second_2)
    assert setup.reserve(2, per_second_2) == [0, 1000]


def test_a_released_tail_gives_its_time_back(setup: Setup) -> None:
    assert setup.reserve(5, PER_SECOND_1) == [0, 1000, 2000, 3000, 4000]
    setup.release([3000, 4000], PER_SECOND_1)  # a batch cut short after three sends
    assert setup.reserve(2, PER_SECOND_1) == [3000, 4000]


def test_the_gap_counts_from_the_last_slot_kept(setup: Setup) -> None:
    assert setup.reserve(3, PER_SECOND_1, gap_ms=5000) == [0, 5000, 10_000]
    setup.release([10_000], PER_SECOND_1)
    assert setup.reserve(1, PER_SECOND_1, gap_ms=5000) == [10_000]
    setup.release([5000, 10_000], PER_SECOND_1)
    assert setup.reserve(1, PER_SECOND_1, gap_ms=7000) == [7000]


def test_releasing_an_old_last_slot_never_moves_it_later() -> None:
    clock = FakeClock(T0_S)
    memory = Setup(MemoryBackend(clock), int(T0_S * 1000))
    assert memory.reserve(1, PER_SECOND_1) == [0]
    clock.advance(10)  # the slot is long stale: nothing tracked is newer than now - 1 s
    memory.release([0], PER_SECOND_1)
    assert memory.reserve(1, PER_SECOND_1, gap_ms=5000) == [10_000]  # not 9 s + the gap


def test_without_windows_the_last_slot_stays_where_it_was(setup: Setup) -> None:
    assert setup.reserve(2, (), gap_ms=5000) == [0, 5000]
    setup.release([5000], ())  # no slots are kept to say which one came before
    assert setup.reserve(1, (), gap_ms=5000) == [10_000]


def test_released_slots_come_off_their_days_count(setup: Setup) -> None:
    day = DayQuota("2026-05-28", limit=4, end_ms=FAR_MS // 2, count_if_missing=0)
    assert setup.reserve(4, PER_SECOND_1, day=day) == [0, 1000, 2000, 3000]
    setup.release([1000, 3000], PER_SECOND_1, day.key)
    assert setup.reserve(3, PER_SECOND_1, day=day) == [3000, 4000]  # then the day is full


def test_a_days_count_never_falls_below_zero_nor_appears(setup: Setup) -> None:
    day = DayQuota("2026-05-28", limit=2, end_ms=FAR_MS // 2)  # no seed: asks when missing
    setup.release([0], (), "2026-05-28")
    missing = setup.backend.reserve(
        "a", windows=(), gaps_ms=[0], open_from_ms=setup.start_ms, open_until_ms=FAR_MS, day=day
    )
    assert missing.outcome is Outcome.DAY_COUNT_MISSING  # the release created no counter
    seeded = DayQuota(day.key, day.limit, day.end_ms, count_if_missing=1)
    assert setup.reserve(1, (), day=seeded) == [0]
    setup.release([0, 0, 0], (), day.key)  # more than were counted
    assert setup.reserve(3, (), day=day) == [0, 0]


def test_a_release_leaves_other_days_alone(setup: Setup) -> None:
    first = DayQuota("2026-05-28", limit=1, end_ms=FAR_MS // 2, count_if_missing=0)
    second = DayQuota("2026-05-29", limit=1, end_ms=FAR_MS // 2, count_if_missing=0)
    assert setup.reserve(1, (), day=first) == [0]
    assert setup.reserve(1, (), day=second) == [0]
    setup.release([0], (), second.key)
    assert setup.reserve(1, (), day=first) == []
    assert setup.reserve(1, (), day=second) == [0]


@pytest.mark.parametrize(
    ("bad", "message"), [([], "release 1..10000 slots"), ([-1], "must not be negative")]
)
def test_a_malformed_release_is_a_value_error(setup: Setup, bad: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        setup.backend.release("a", times_ms=bad, windows=(), day=None)


@pytest.fixture(params=["memory", "redis"])
def limiter_and_clock(request: pytest.FixtureRequest) -> tuple[AccountLimiter, float]:
    """An account limiter on either backend, and the instant it starts at."""
    limits = AccountLimits(per_second=5, per_day=10)
    if request.param == "memory":
        clock = FakeClock(T0_S)
        backend: LimiterBackend = MemoryBackend(clock)
        made = AccountLimiter(Policy("p", limits), "acct", "Asia/Shanghai", backend, clock=clock)
        return made, T0_S
    client = cast(redis.Redis, request.getfixturevalue("redis_client"))
    backend = RedisBackend(client, unique_prefix())
    made = AccountLimiter(Policy("p", limits), "acct", zone_near_noon(), backend)
    return made, redis_now_s(client)


def test_a_days_budget_with_released_slots_is_fully_used(
    limiter_and_clock: tuple[AccountLimiter, float],
) -> None:
    made, start_s = limiter_and_clock
    today = made.calendar.local_day(round(start_s * 1000))
    first = made.reserve(10)
    assert all(today.start_ms <= round(t * 1000) < today.end_ms for t in first)
    gone = (2, 5, 9)  # five slots share each second's first millisecond: pick by position
    made.release([first[i] for i in gone])
    kept = [t for i, t in enumerate(first) if i not in gone] + made.reserve(5)
    on_today = [t for t in kept if round(t * 1000) < today.end_ms]
    assert len(on_today) == 10  # exactly the day's budget, nothing lost to the releases
    assert violations(kept, made.limits, made.calendar.tz) == []


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    limits=account_limits(),
    tz=st.sampled_from(ZONES),
    start_s=start_instants,
    steps=st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(0, 5), st.floats(0, 4 * 3600)),
            st.integers(1, 10),
            st.lists(st.integers(0, 10**6), max_size=6),
        ),
        min_size=1,
        max_size=20,
    ),
    seed=st.integers(0, 2**32),
)
def test_reserving_and_releasing_never_overfill_a_window_with_the_slots_kept(
    limits: AccountLimits,
    tz: str,
    start_s: float,
    steps: list[tuple[float, int, list[int]]],
    seed: int,
) -> None:
    clock = FakeClock(start_s)
    backend = MemoryBackend(clock)
    made = AccountLimiter(
        Policy("random", limits), "acct", tz, backend, clock=clock, rng=random.Random(seed)
    )
    kept: list[float] = []
    for advance_s, count, picks in steps:
        clock.advance(advance_s)
        got = made.reserve(count)
        assert len(got) == count and got[0] >= clock.now_s - 0.001
        kept += got
        gone = {pick % len(kept) for pick in picks}
        made.release([kept[i] for i in sorted(gone)])
        kept = [t for i, t in enumerate(kept) if i not in gone]
    assert violations(kept, made.limits, ZoneInfo(tz)) == []


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    limits=account_limits(),
    tz=st.sampled_from(ZONES),
    steps=st.lists(
        st.tuples(st.integers(1, 8), st.lists(st.integers(0, 10**6), max_size=4)),
        min_size=1,
        max_size=10,
    ),
    seed=st.integers(0, 2**32),
)
def test_on_redis_reserving_and_releasing_never_overfill_a_window(
    redis_client: object,
    limits: AccountLimits,
    tz: str,
    steps: list[tuple[int, list[int]]],
    seed: int,
) -> None:
    client = cast(redis.Redis, redis_client)
    backend = RedisBackend(client, unique_prefix())
    made = AccountLimiter(Policy("random", limits), "acct", tz, backend, rng=random.Random(seed))
    kept: list[float] = []
    for count, picks in steps:
        kept += made.reserve(count)
        gone = {pick % len(kept) for pick in picks}
        made.release([kept[i] for i in sorted(gone)])
        kept = [t for i, t in enumerate(kept) if i not in gone]
    assert violations(kept, made.limits, ZoneInfo(tz)) == []
    written = list(client.scan_iter(f"{backend.prefix}:*"))
    if written:
        client.delete(*written)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    windows=st.lists(
        st.tuples(st.sampled_from([1000, 5000, 60_000]), st.integers(1, 4)), max_size=3
    ).map(lambda pairs: tuple(Window(span, limit) for span, limit in pairs)),
    day_limit=st.none() | st.integers(1, 30),
    steps=st.lists(
        st.tuples(
            st.lists(st.sampled_from([0, 0, 300, 2500]), min_size=1, max_size=6),
            st.lists(st.integers(0, 10**6), max_size=4),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_redis_and_memory_agree_on_every_reply_to_reserves_and_releases(
    redis_client: object,
    windows: tuple[Window, ...],
    day_limit: int | None,
    steps: list[tuple[list[int], list[int]]],
) -> None:
    client = cast(redis.Redis, redis_client)
    both = [
        Setup(MemoryBackend(FakeClock(T0_S)), int(T0_S * 1000) + 600_000),
        Setup(RedisBackend(client, unique_prefix()), int(redis_now_s(client) * 1000) + 600_000),
    ]
    day = None
    if day_limit is not None:
        day = DayQuota("2026-05-28", day_limit, end_ms=FAR_MS // 2, count_if_missing=0)
    kept: list[int] = []
    for gaps, picks in steps:
        replies = []
        for one in both:
            got = one.backend.reserve(
                "a",
                windows=windows,
                gaps_ms=gaps,
                open_from_ms=one.start_ms,
                open_until_ms=one.start_ms + 3_600_000,
                day=day,
            )
            resume = got.resume_at_ms
            if got.outcome is Outcome.CLOSED and resume is not None:
                resume -= one.start_ms  # DAY_FULL resumes at day.end_ms, the same for both
            replies.append(([t - one.start_ms for t in got.times_ms], got.outcome, resume))
        assert replies[0] == replies[1]
        kept += replies[0][0]
        gone = sorted({pick % len(kept) for pick in picks}) if kept else []
        if not gone:
            continue
        for one in both:
            one.release([kept[i] for i in gone], windows, day.key if day else None)
        kept = [t for i, t in enumerate(kept) if i not in gone]
    written = list(client.scan_iter(f"{cast(RedisBackend, both[1].backend).prefix}:*"))
    if written:
        client.delete(*written)
