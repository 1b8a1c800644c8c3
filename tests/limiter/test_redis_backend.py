"""The Redis backend against real Redis: parity with memory, concurrency, day rebuild, TTLs.

Redis TIME is the clock here, so these tests assert properties (no violations, spacing,
ordering against Redis' own clock), never exact times or durations.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from worker.errors import ServiceUnavailable
from worker.limiter.backend import DayQuota, Outcome
from worker.limiter.limiter import AccountLimiter
from worker.limiter.localtime import LocalDay
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import AccountLimits, Policy, QuietHours, Window
from worker.limiter.redis_backend import RedisBackend

from .checker import violations
from .procs import reserve_many
from .redis_support import local_minutes, redis_now_s, unique_prefix, zone_near_noon
from .timeutil import FakeClock

BUSY = AccountLimits(per_second=5, per_minute=60, min_gap_s=0.02, max_gap_s=0.08)
FAR_MS = 2**52


def make_limiter(
    backend: RedisBackend, limits: AccountLimits, tz: str | None = None, **kwargs: Any
) -> AccountLimiter:
    policy = Policy("test", limits)
    return AccountLimiter(policy, "acct", tz or zone_near_noon(), backend, **kwargs)


def test_redis_and_memory_place_the_same_schedule(backend: RedisBackend) -> None:
    windows = (Window(1000, 3), Window(60_000, 10))
    gaps = [0, 250, 100, 400, 0, 0, 300, 250, 100, 0, 50, 0, 0]
    memory = MemoryBackend(FakeClock(1_780_000_000.0))
    expected = memory.reserve(
        "a", windows=windows, gaps_ms=gaps, open_from_ms=0, open_until_ms=FAR_MS
    )
    got = backend.reserve("a", windows=windows, gaps_ms=gaps, open_from_ms=0, open_until_ms=FAR_MS)
    assert got.outcome is expected.outcome is Outcome.RESERVED
    assert [t - got.times_ms[0] for t in got.times_ms] == [
        t - expected.times_ms[0] for t in expected.times_ms
    ]


@pytest.mark.parametrize(("until_after_ms", "expected"), [(2000, 4), (2001, 5)])
def test_a_slot_exactly_at_open_until_is_not_reserved_on_redis(
    backend: RedisBackend, client: redis.Redis, until_after_ms: int, expected: int
) -> None:
    start = int(redis_now_s(client) * 1000) + 600_000  # later than now: now cannot matter
    got = backend.reserve(
        "a",
        windows=(Window(1000, 2),),
        gaps_ms=[0] * 5,
        open_from_ms=start,
        open_until_ms=start + until_after_ms,
    )
    assert [t - start for t in got.times_ms] == [0, 0, 1000, 1000, 2000][:expected]
    if expected == 4:
        assert (got.outcome, got.resume_at_ms) == (Outcome.CLOSED, start + 2000)


def test_redis_time_is_the_clock_not_the_callers(
    backend: RedisBackend, client: redis.Redis
) -> None:
    behind = FakeClock(redis_now_s(client) - 3600)  # a host whose clock is an hour slow
    limiter = make_limiter(backend, AccountLimits(per_second=1), clock=behind)
    before = redis_now_s(client)
    assert limiter.reserve(1)[0] >= before - 0.001


def test_a_batch_of_100_respects_every_window_and_gap(backend: RedisBackend) -> None:
    limits = AccountLimits(per_second=10, per_minute=200, min_gap_s=0.01, max_gap_s=0.05)
    limiter = make_limiter(backend, limits, rng=random.Random(3))
    times = limiter.reserve(100)
    assert len(times) == 100
    assert violations(times, limits, limiter.calendar.tz) == []


def test_threads_reserving_for_one_account_never_break_a_limit(backend: RedisBackend) -> None:
    tz = zone_near_noon()
    reserved: list[float] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        limiter = make_limiter(backend, BUSY, tz, rng=rng)
        for _ in range(12):
            got = limiter.reserve(rng.choice([1, 1, 2, 5]))
            with lock:
                reserved.extend(got)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reserved) >= 8 * 12
    assert violations(reserved, BUSY, make_limiter(backend, BUSY, tz).calendar.tz) == []


def test_four_processes_reserving_for_one_account_never_break_a_limit(
    backend: RedisBackend, redis_url: str
) -> None:
    tz = zone_near_noon()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    batches = [1, 3, 1, 1, 7, 1, 2, 1, 4, 1, 1, 5, 1, 1, 2]
    processes = [
        context.Process(
            target=reserve_many,
            args=(
                redis_url,
                backend.prefix,
                "acct",
                Policy("p", BUSY),
                tz,
                batches,
                seed,
                barrier,
                results,
            ),
        )
        for seed in range(4)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    reserved = [t for _, times in reports for t in times]
    assert len(reserved) == 4 * sum(batches)
    assert violations(reserved, BUSY, make_limiter(backend, BUSY, tz).calendar.tz) == []


def test_a_lost_day_count_is_rebuilt_from_the_database(
    backend: RedisBackend, client: redis.Redis
) -> None:
    answers = [3, 4, 0]  # what the database says was sent on the day asked about
    asked: list[str] = []

    def sent_on(day: LocalDay) -> int:
        asked.append(day.key)
        return answers[len(asked) - 1]

    limiter = make_limiter(backend, AccountLimits(per_day=5), day_counter=sent_on)

    def day_of(times: list[float]) -> str:
        return limiter.calendar.local_day(round(times[0] * 1000)).key

    today = day_of(limiter.reserve(1))
    day_key = backend.keys("acct", today)[2]
    assert (asked, int(client.get(day_key) or 0)) == ([today], 4)
    limiter.reserve(1)
    assert asked == [today]  # a stored count is trusted while it exists
    client.delete(day_key)  # Redis lost it (restart without persistence, eviction)
    assert day_of(limiter.reserve(1)) == today
    assert (asked, int(client.get(day_key) or 0)) == ([today, today], 5)
    tomorrow = day_of(limiter.reserve(1))
    assert tomorrow > today
    assert asked == [today, today, tomorrow]


def test_without_a_seed_a_missing_day_count_reserves_nothing(
    backend: RedisBackend, client: redis.Redis
) -> None:
    day = DayQuota("2026-05-01", limit=3, end_ms=FAR_MS // 2)
    got = backend.reserve(
        "a", windows=(), gaps_ms=[0], open_from_ms=0, open_until_ms=FAR_MS, day=day
    )
    assert (got.outcome, got.times_ms) == (Outcome.DAY_COUNT_MISSING, ())
    assert client.exists(*backend.keys("a", day.key)) == 0


def test_quiet_hours_hold_sends_until_they_end(backend: RedisBackend, client: redis.Redis) -> None:
    tz = zone_near_noon()
    now_min = local_minutes(tz, redis_now_s(client))
    limits = AccountLimits(per_second=2, quiet_hours=QuietHours(now_min - 30, now_min + 30))
    limiter = make_limiter(backend, limits, tz)
    times = limiter.reserve(5)
    assert violations(times, limits, limiter.calendar.tz) == []
    assert local_minutes(tz, times[0]) == now_min + 30


def test_every_key_expires(backend: RedisBackend, client: redis.Redis) -> None:
    limits = AccountLimits(per_minute=30, per_day=100, min_gap_s=0.1, max_gap_s=0.2)
    make_limiter(backend, limits).reserve(10)
    keys = list(client.scan_iter(f"{backend.prefix}:*"))
    assert len(keys) == 3
    for key in keys:
        assert 0 < client.pttl(key) <= 3 * 24 * 3600 * 1000, key


def test_an_unreachable_redis_is_a_service_error() -> None:
    dead = RedisBackend(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1))
    with pytest.raises(ServiceUnavailable, match="Redis is unreachable"):
        dead.reserve("a", windows=(), gaps_ms=[0], open_from_ms=0, open_until_ms=FAR_MS)


def test_the_backend_works_over_the_embedded_unix_socket_redis(tmp_path: Path) -> None:
    from worker.runtime.embedded import EmbeddedRedis

    embedded = EmbeddedRedis(tmp_path / "state")
    url = embedded.start()
    try:
        assert url.startswith("unix://")
        backend = RedisBackend.from_url(url, unique_prefix())
        limiter = make_limiter(backend, BUSY, rng=random.Random(5))
        times = limiter.reserve(30)
        backend.client.script_flush()  # a server that forgot the script loads it again
        times += limiter.reserve(10)
        assert violations(times, BUSY, limiter.calendar.tz) == []
        backend.client.close()
    finally:
        embedded.stop()
