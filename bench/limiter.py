"""The Redis limiter's speed and accuracy, against the `limits` library in the same run.

    .venv/bin/python bench/limiter.py [--redis-url URL] [--seconds S] [--limit N]

Throughput: `AccountLimiter.reserve(1)` from 1 and 4 processes (one account each, as lanes
are), `reserve(100)` slots/s, and `limits`' moving window (`MovingWindowRateLimiter` on
`RedisStorage`) `hit()` from 1 and 4 processes, all with the same per-second limit.
Accuracy: 4 processes hammer ONE key limited to N/s for S seconds. An event is a violation
when the 1-second window ending at it holds more than N events. For siyu the events are the
reserved send times (what the limiter grants) and, separately, the wall-clock times at which
the processes woke up to send, once with the default 50 ms window margin and once without;
for `limits` the wall time at which `hit()` returned True. Baseline: redis-py PING round
trips from 1 and 4 processes through the client's pool, and from 1 process on a pinned
connection (`Redis.client()`, as `RedisBackend` sends): the ceiling of any
one-call-per-operation client here. The JSON says which reply parser redis-py used.

Uses only the given Redis (default db 14 on loopback), only keys under its own random
prefixes, deleted at the end. Prints a table; the last line is one JSON object. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.utils import HIREDIS_AVAILABLE

from worker.limiter import AccountLimiter, AccountLimits, Policy, RedisBackend

FAST_PER_SECOND = 10_000  # high enough to measure the limiter, not the policy
FAST = Policy("bench", AccountLimits(per_second=FAST_PER_SECOND, per_minute=600_000, per_day=10**8))


@dataclass(frozen=True)
class Target:
    """Where one run keeps its keys (passed to every process: each draws no names itself)."""

    url: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def siyu_prefix(self) -> str:
        return f"siyu:bench:{self.run}"

    @property
    def limits_prefix(self) -> str:
        return f"siyubench{self.run}"

    def limits_strategy(self) -> MovingWindowRateLimiter:
        """`limits` on the same Redis; it spells unix sockets `redis+unix://`."""
        url = self.url
        uri = "redis+unix://" + url[len("unix://") :] if url.startswith("unix://") else url
        return MovingWindowRateLimiter(RedisStorage(uri, key_prefix=self.limits_prefix))

    def siyu_limiter(self, key: str, policy: Policy, margin_ms: int = 50) -> AccountLimiter:
        backend = RedisBackend(redis.Redis.from_url(self.url), self.siyu_prefix)
        return AccountLimiter(
            policy, key, "UTC", backend, rng=random.Random(key), window_margin_ms=margin_ms
        )


def count_for(seconds: float, step: Callable[[], int]) -> tuple[int, float]:
    """Call `step` (returning how many it did) for `seconds`; return (done, elapsed)."""
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += step()
    return done, time.perf_counter() - start


def throughput_worker(mode: str, target: Target, key: str, seconds: float) -> tuple[int, float]:
    """One process's (operations, elapsed) for a mode: ping, siyu, siyu-batch or limits."""
    if mode in ("ping", "ping-pinned"):
        client = redis.Redis.from_url(target.url)
        if mode == "ping-pinned":
            client = client.client()
        return count_for(seconds, lambda: int(client.ping()))
    if mode == "limits":
        strategy = target.limits_strategy()
        item = RateLimitItemPerSecond(FAST_PER_SECOND)

        def hit() -> int:
            strategy.hit(item, key)
            return 1

        return count_for(seconds, hit)
    limiter = target.siyu_limiter(key, FAST)
    batch = 100 if mode == "siyu-batch" else 1
    return count_for(seconds, lambda: len(limiter.reserve(batch)))


def accuracy_worker(
    mode: str, target: Target, limit: int, seconds: float
) -> list[tuple[float, float]]:
    """(granted, woke) times of one process hammering the shared key for `seconds`."""
    deadline = time.time() + seconds
    events: list[tuple[float, float]] = []
    if mode == "limits":
        strategy = target.limits_strategy()
        item = RateLimitItemPerSecond(limit)
        while time.time() < deadline:
            if strategy.hit(item, "shared"):
                now = time.time()
                events.append((now, now))
        return events
    policy = Policy("acc", AccountLimits(per_second=limit))
    exact = mode == "siyu-exact"  # no window margin: slots on the exact window edge
    limiter = target.siyu_limiter(f"shared-{mode}", policy, 0 if exact else 50)
    while True:
        at = limiter.reserve(1)[0]
        if at > deadline:
            return events
        time.sleep(max(0.0, at - time.time()))
        events.append((at, time.time()))


def _child(job: tuple[Any, ...], barrier: Any, results: Any) -> None:
    function, args = job[0], job[1:]
    barrier.wait(timeout=120)
    results.put(function(*args))


def in_processes(jobs: list[tuple[Any, ...]]) -> list[Any]:
    """Run `(function, *args)` jobs in separate processes started together; their results."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(jobs)), context.Queue()
    processes = [context.Process(target=_child, args=(job, barrier, results)) for job in jobs]
    for process in processes:
        process.start()
    collected = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return collected


def rate(results: list[tuple[int, float]]) -> float:
    return sum(done / elapsed for done, elapsed in results)


def excess(events: Sequence[float], limit: int, span: float = 1.0) -> tuple[int, int]:
    """(violations, most events in any `span`): events whose trailing window holds > limit."""
    times = sorted(events)
    violations = sum(1 for i in range(limit, len(times)) if times[i] - times[i - limit] < span)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= span:
            start += 1
        most = max(most, end - start + 1)
    return violations, most


def measure(target: Target, seconds: float, limit: int) -> dict[str, Any]:
    """Every figure of the run, measured in order (no two measurements overlap)."""

    def one(mode: str) -> float:
        return rate([throughput_worker(mode, target, "solo", seconds)])

    def four(mode: str) -> float:
        jobs = [(throughput_worker, mode, target, f"p{i}", seconds) for i in range(4)]
        return rate(in_processes(jobs))

    def hammer(mode: str) -> list[tuple[float, float]]:
        """Events from 4 processes hammering one key."""
        runs = in_processes([(accuracy_worker, mode, target, limit, seconds)] * 4)
        return [event for run in runs for event in run]

    figures: dict[str, Any] = {
        "ping_rate_1p": one("ping"),
        "ping_pinned_rate_1p": one("ping-pinned"),
    }
    figures.update(reserve_rate_1p=one("siyu"), reserve_rate_4p=four("siyu"))
    figures["batch_slot_rate"] = one("siyu-batch")
    figures.update(limits_rate_1p=one("limits"), limits_rate_4p=four("limits"))
    figures["ping_rate_4p"] = four("ping")
    siyu, exact, theirs = hammer("siyu"), hammer("siyu-exact"), hammer("limits")
    for name, events in (("", siyu), ("_exact", exact)):
        granted_ms = [round(at * 1000) for at, _ in events]  # as reserved
        figures[f"violations{name}"], figures[f"max_in_1s{name}"] = excess(granted_ms, limit, 1000)
        woke = [w for _, w in events]
        figures[f"violations{name}_woke"], figures[f"max_in_1s{name}_woke"] = excess(woke, limit)
    theirs_at = [w for w, _ in theirs]
    figures["limits_violations"], figures["limits_max_in_1s"] = excess(theirs_at, limit)
    figures.update(allowed=len(siyu), allowed_exact=len(exact), limits_allowed=len(theirs))
    figures["limit_per_s"] = limit
    figures["parser"] = "hiredis" if HIREDIS_AVAILABLE else "python"
    figures["seconds"] = seconds
    return figures


def report(url: str, f: dict[str, Any]) -> None:
    """The table, then the figures as one JSON line."""
    print(f"siyu limiter benchmark on {url}, {f['seconds']:g} s per measurement")
    print(f"redis-py {redis.__version__}, {f['parser']} reply parser\n")
    print(f"{'throughput':<52}{'per second':>14}")
    rows = [
        ("baseline: redis-py PING round trips, 1 process", "ping_rate_1p"),
        ("baseline: redis-py PING round trips, 4 processes", "ping_rate_4p"),
        ("baseline: PING on a pinned connection, 1 process", "ping_pinned_rate_1p"),
        ("siyu AccountLimiter.reserve(1), 1 process", "reserve_rate_1p"),
        ("siyu AccountLimiter.reserve(1), 4 processes", "reserve_rate_4p"),
        ("siyu AccountLimiter.reserve(100), 1 process: slots", "batch_slot_rate"),
        ("limits MovingWindowRateLimiter.hit(), 1 process", "limits_rate_1p"),
        ("limits MovingWindowRateLimiter.hit(), 4 processes", "limits_rate_4p"),
    ]
    for label, key in rows:
        print(f"  {label:<50}{f[key]:>14,.0f}")
    print(f"\naccuracy: 4 processes, one key, {f['limit_per_s']}/s for {f['seconds']:g} s")
    print(f"  {'':<50}{'allowed':>9}{'max in 1 s':>12}{'violations':>12}")
    lines = [
        ("siyu, 50 ms window margin: reserved send times", "", ""),
        ("siyu, 50 ms window margin: wall clock on waking", "", "_woke"),
        ("siyu, no margin: reserved send times", "_exact", "_exact"),
        ("siyu, no margin: wall clock on waking", "_exact", "_exact_woke"),
        ("limits: wall time of hit() == True", "limits", "limits"),
    ]
    for label, run, kind in lines:
        allowed = f["limits_allowed"] if run == "limits" else f[f"allowed{run}"]
        most = f["limits_max_in_1s"] if run == "limits" else f[f"max_in_1s{kind}"]
        bad = f["limits_violations"] if run == "limits" else f[f"violations{kind}"]
        print(f"  {label:<50}{allowed:>9}{most:>12}{bad:>12}")
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in f.items()}))


def cleanup(target: Target) -> None:
    """Delete this run's keys, and only those."""
    client = redis.Redis.from_url(target.url)
    for pattern in (f"{target.siyu_prefix}:*", f"{target.limits_prefix}:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--limit", type=int, default=20, help="per-second limit for accuracy")
    args = parser.parse_args()
    target = Target(args.redis_url)
    redis.Redis.from_url(target.url).ping()
    try:
        report(target.url, measure(target, args.seconds, args.limit))
    finally:
        cleanup(target)


if __name__ == "__main__":
    main()
