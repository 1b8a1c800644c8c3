"""Per-account rate limiting: policies, an atomic reservation backend, and the limiter.

    policy.py         rate_limits/<name>.toml -> Policy (load_policies, resolve_policy)
    model.py          the frozen policy values (no storage detail)
    localtime.py      local days and quiet hours in the account's time zone
    backend.py        the LimiterBackend protocol: atomic reserve() and release()
    reserve.lua       those primitives on Redis, Redis TIME as the clock (+ release.lua)
    redis_backend.py  RedisBackend (production) | memory.py  MemoryBackend (tests)
    limiter.py        AccountLimiter: Policy + time zone + backend -> send times

Typical use in a lane:

    policy = resolve_policy(load_policies(settings.rate_limits_dir), account.policy, channel)
    limiter = AccountLimiter(
        policy, f"account:{account.id}", account.tz, RedisBackend(redis_client),
        rate_multiplier=multiplier, day_counter=lambda day: sent_between(day.start_ms, day.end_ms),
        recent_sends=lambda from_ms, to_ms: send_times_between(from_ms, to_ms),
    )
    slots = limiter.reserve_until(len(batch), not_after=slice_end_s)
    for message, at in zip(batch, slots.times_s):   # fewer than asked: slots.next_open_s
        time.sleep(max(0.0, at - time.time()))
        send(message)
    limiter.release(unused)   # slots of skipped recipients or a batch cut short
"""

from worker.limiter.backend import DayQuota, LimiterBackend, Outcome, Reservation
from worker.limiter.limiter import AccountLimiter, DayCounter, RecentSends, Slots
from worker.limiter.localtime import LocalCalendar, LocalDay, OpenPeriod
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import AccountLimits, Policy, QuietHours, RecipientLimits, Window
from worker.limiter.policy import load_policies, parse_policy, resolve_policy
from worker.limiter.redis_backend import RedisBackend

__all__ = [
    "AccountLimiter",
    "AccountLimits",
    "DayCounter",
    "DayQuota",
    "LimiterBackend",
    "LocalCalendar",
    "LocalDay",
    "MemoryBackend",
    "OpenPeriod",
    "Outcome",
    "Policy",
    "QuietHours",
    "RecentSends",
    "RecipientLimits",
    "RedisBackend",
    "Reservation",
    "Slots",
    "Window",
    "load_policies",
    "parse_policy",
    "resolve_policy",
]
