"""After Redis loses an account's keys, its windows and gap are rebuilt from the database.

Each test runs on the memory backend (fake clock) and on real Redis. The limiter's own clock
is a fake set to the backend's time, so the database look-back is exact; on Redis the slots
follow Redis TIME, so those tests compare reserved times with each other, never with a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis

from worker.limiter.backend import DayQuota, LimiterBackend, Outcome, Reservation
from worker.limiter.limiter import AccountLimiter
from worker.limiter.localtime import LocalDay
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import AccountLimits, Policy, Window
from worker.limiter.redis_backend import RedisBackend

from .redis_support import redis_now_s, unique_prefix, zone_near_noon
from .timeutil import FakeClock

T0_S = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC; Asia/Shanghai is then on 2026-05-29
FAR_MS = 2**52


@dataclass
class Database:
    """The send times a database recorded, read back the way `limiter_for` reads them."""

    sent_ms: list[int] = field(default_factory=list)
    asked: list[tuple[int, int]] = field(default_factory=list)
    days_asked: list[str] = field(default_factory=list)

    def record(self, times_s: Sequence[float]) -> None:
        self.sent_ms += [round(t * 1000) for t in times_s]

    def recent(self, from_ms: int, to_ms: int) -> list[int]:
        self.asked.append((from_ms, to_ms))
        return sorted((t for t in self.sent_ms if from_ms <= t < to_ms), reverse=True)

    def sent_on(self, day: LocalDay) -> int:
        self.days_asked.append(day.key)
        return sum(1 for t in self.sent_ms if day.start_ms <= t < day.end_ms)


class CountingBackend:
    """A backend that counts its reserve calls (round trips on Redis)."""

    def __init__(self, inner: LimiterBackend) -> None:
        self.inner = inner
        self.reserves = 0

    def reserve(self, account_key: str, **kwargs: Any) -> Reservation:
        self.reserves += 1
        return self.inner.reserve(account_key, **kwargs)

    def release(self, account_key: str, **kwargs: Any) -> None:
        self.inner.release(account_key, **kwargs)


@dataclass
class Setup:
    backend: LimiterBackend
    clock: FakeClock  # the limiter's clock, set to the backend's time
    tz: str
    lose: Callable[[str], None]  # drop every key of an account, as a restart without AOF/RDB

    def limiter(self, limits: AccountLimits, db: Database, **kwargs: Any) -> AccountLimiter:
        return AccountLimiter(
            Policy("p", limits),
            "acct",
            self.tz,
            kwargs.pop("backend", self.backend),
            clock=self.clock,
            recent_sends=db.recent,
            window_margin_ms=0,
            **kwargs,
        )


@pytest.fixture(params=["memory", "redis"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    if request.param == "memory":
        clock = FakeClock(T0_S)
        memory = MemoryBackend(clock)
        yield Setup(memory, clock, "Asia/Shanghai", memory.forget_account)
        return
    client = cast(redis.Redis, request.getfixturevalue("redis_client"))
    backend = RedisBackend(client, unique_prefix())

    def lose(account_key: str) -> None:
        client.delete(*client.scan_iter(f"{backend.prefix}:{{{account_key}}}:*"))

    yield Setup(backend, FakeClock(redis_now_s(client)), zone_near_noon(), lose)


def test_a_per_minute_window_still_binds_after_redis_lost_the_slots(setup: Setup) -> None:
    db = Database()
    limiter = setup.limiter(AccountLimits(per_minute=3), db)
    first = limiter.reserve(3)
    db.record(first)
    setup.lose("acct")
    [after] = limiter.reserve(1)
    assert after >= first[0] + 60  # the window from the first of the three sends
    if isinstance(setup.backend, MemoryBackend):
        assert after == first[0] + 60


def test_the_gap_still_holds_after_redis_lost_the_last_send(setup: Setup) -> None:
    db = Database()
    limiter = setup.limiter(AccountLimits(min_gap_s=30, max_gap_s=30), db)
    first = limiter.reserve(2)
    db.record(first)
    setup.clock.now_s = first[1] + 1  # both were sent; then Redis lost the account's keys
    setup.lose("acct")
    [after] = limiter.reserve(1)
    assert after - first[1] == pytest.approx(30)


def test_a_new_account_costs_one_more_round_trip_once(setup: Setup) -> None:
    db = Database()
    counting = CountingBackend(setup.backend)
    limits = AccountLimits(per_second=2, per_day=100)
    limiter = setup.limiter(limits, db, backend=counting, day_counter=db.sent_on)
    db.record(limiter.reserve(1))
    assert (counting.reserves, len(db.asked), len(db.days_asked)) == (2, 1, 1)
    for _ in range(5):
        db.record(limiter.reserve(1))
    assert (counting.reserves, len(db.asked), len(db.days_asked)) == (7, 1, 1)


def test_the_database_is_asked_for_one_longest_window_of_sends(setup: Setup) -> None:
    db = Database()
    limiter = setup.limiter(AccountLimits(per_second=2, per_hour=40, max_gap_s=90), db)
    limiter.reserve(1)
    now_ms = int(setup.clock.now_s * 1000)  # as the limiter reads its clock
    assert db.asked == [(now_ms - 3_600_000, now_ms + 3_600_000)]


def test_only_the_newest_sends_up_to_the_largest_limit_are_seeded() -> None:
    clock = FakeClock(T0_S)
    backend = MemoryBackend(clock)
    seeds: list[Sequence[int] | None] = []

    class Recording(CountingBackend):
        def reserve(self, account_key: str, **kwargs: Any) -> Reservation:
            seeds.append(kwargs["recent_if_missing"])
            return super().reserve(account_key, **kwargs)

    now_ms = round(T0_S * 1000)
    db = Database(sent_ms=[now_ms - 1000 * i for i in range(1, 40)])
    limiter = AccountLimiter(
        Policy("p", AccountLimits(per_minute=5)),
        "acct",
        "UTC",
        Recording(backend),
        clock=clock,
        recent_sends=db.recent,
        window_margin_ms=0,
    )
    [at] = limiter.reserve(1)
    assert seeds == [
        None,
        [now_ms - 5000, now_ms - 4000, now_ms - 3000, now_ms - 2000, now_ms - 1000],
    ]
    assert at == (now_ms - 5000 + 60_000) / 1000


def test_without_a_hook_or_anything_to_rebuild_nothing_is_asked(setup: Setup) -> None:
    db = Database()
    counting = CountingBackend(setup.backend)
    only_a_day = setup.limiter(AccountLimits(per_day=5), db, backend=counting)
    only_a_day.reserve(1)
    assert (counting.reserves, db.asked) == (1, [])
    no_hook = AccountLimiter(
        Policy("p", AccountLimits(per_second=1)), "other", setup.tz, counting, clock=setup.clock
    )
    no_hook.reserve(1)
    assert counting.reserves == 2


def reserve_once(
    backend: LimiterBackend,
    start_ms: int,
    recent: Sequence[int] | None,
    *,
    until_ms: int = FAR_MS,
    day: DayQuota | None = None,
) -> Reservation:
    return backend.reserve(
        "a",
        windows=(Window(60_000, 2),),
        gaps_ms=[0],
        open_from_ms=start_ms,
        open_until_ms=until_ms,
        day=day,
        recent_if_missing=recent,
    )


def test_a_missing_state_is_reported_and_a_rebuilt_one_is_kept_even_if_nothing_fits(
    setup: Setup,
) -> None:
    now_ms = round(setup.clock.now_s * 1000)
    missing = reserve_once(setup.backend, now_ms, None)
    assert (missing.outcome, missing.times_ms) == (Outcome.STATE_MISSING, ())
    sent = [now_ms - 1000, now_ms - 1000]  # two a minute: the next one a minute later
    closed = reserve_once(setup.backend, now_ms, sent, until_ms=now_ms + 1000)
    assert (closed.outcome, closed.resume_at_ms) == (Outcome.CLOSED, now_ms + 59_000)
    again = reserve_once(setup.backend, now_ms, None)  # the rebuilt state was kept
    assert (again.outcome, again.times_ms) == (Outcome.RESERVED, (now_ms + 59_000,))


def test_a_missing_day_count_is_asked_for_before_a_state_is_rebuilt(setup: Setup) -> None:
    start_ms = round(setup.clock.now_s * 1000) + 600_000
    day = DayQuota("2026-05-29", limit=5, end_ms=FAR_MS // 2)
    got = reserve_once(setup.backend, start_ms, [start_ms - 700_000], day=day)
    assert got.outcome is Outcome.DAY_COUNT_MISSING
    assert reserve_once(setup.backend, start_ms, None).outcome is Outcome.STATE_MISSING


def test_a_state_rebuilt_on_redis_keeps_the_slots_that_outlived_it(
    backend: RedisBackend, client: redis.Redis
) -> None:
    now_ms = round(redis_now_s(client) * 1000)
    [booked] = reserve_once(backend, now_ms + 600_000, ()).times_ms  # ten minutes ahead
    client.delete(backend.keys("a")[1])  # only the state is lost (evicted, say)
    assert reserve_once(backend, now_ms, []).times_ms == (booked,)  # not before the kept slot
    assert reserve_once(backend, now_ms, None).times_ms == (booked + 60_000,)  # two a minute
