"""The storage contract under the limiter: atomic "reserve the next send times" and "release".

A backend knows windows, gaps and counters, not policies, time zones or quiet hours: the
`AccountLimiter` above it translates those into a request. Two implementations keep the same
semantics: `RedisBackend` (a Lua script each, Redis `TIME` as the clock) for production and
`MemoryBackend` (an injectable clock) for unit tests.

Semantics of `reserve`, shared by both:
  * `now` is the backend's clock. Slot i goes at the earliest time t >= max(now, open_from_ms,
    previous slot + gaps_ms[i]) such that every window holds fewer than `limit` reserved slots
    in (t - span_ms, t]. Reserved slots never move backwards in time, so that single lower
    bound per window is exact, and future slots count against windows at once.
  * A slot at or after `open_until_ms` is not reserved: the reply stops there with
    `Outcome.CLOSED` and `resume_at_ms` = the time that slot would have taken (so a caller
    walking forward skips days that are already booked in one step).
  * With a `DayQuota`, no more than `limit` slots are counted under `day.key`; once full the
    reply stops with `Outcome.DAY_FULL` and `resume_at_ms = day.end_ms`. The counter is read
    once a slot fits the open period. When it is absent (a new day, or Redis lost it), it
    starts from `day.count_if_missing`; if that is `None` nothing is reserved and the reply is
    `Outcome.DAY_COUNT_MISSING`, so the caller can count the day's sends in the database and
    ask again.
  * The account's state (its last slot) is absent for a new account, one idle for a day, or
    after Redis lost it. `recent_if_missing` then rebuilds it from the send times the
    database recorded lately: those after now - the longest span count in the windows, and
    the newest (or a newer tracked slot that outlived the state) is the last slot. With
    `None` nothing is reserved and the reply is `Outcome.STATE_MISSING`, so the caller can
    read them and ask again; the default `()` starts the account empty. A rebuilt state is
    stored even when no slot fits. If the day counter is absent too and has no seed, the
    reply is `Outcome.DAY_COUNT_MISSING` before anything is stored.
  * Slots at or before now - the longest span bind no window, and no release looks at them
    (below): a backend may drop them whenever it likes without changing any reply.

Semantics of `release`, shared by both: each released time removes one slot at that time (two
slots may share a millisecond), so it no longer counts in any window, and lowers the counter
of the local day `day` by one (never below zero; a missing counter stays missing). Release a
slot at most once. When the latest slot goes back, the gap for the next one counts from the
latest slot left after now - the longest span, or else from now - the longest span (earlier
slots are not tracked: that is the latest an unseen one can be). Without windows no slots are
kept, and the latest slot stays where it was.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.limiter.model import Window

MAX_SLOTS_PER_CALL = 10_000


class Outcome(enum.IntEnum):
    """Why a reservation returned (the numbers are what `reserve.lua` replies)."""

    RESERVED = 0  # every requested slot was reserved
    CLOSED = 1  # the next slot would fall at or after open_until_ms (resume_at_ms: its time)
    DAY_FULL = 2  # the local day's count reached its limit
    DAY_COUNT_MISSING = 3  # nothing reserved: the day counter is absent and no seed was given
    STATE_MISSING = 4  # nothing reserved: the account's state is absent and no seed was given


@dataclass(frozen=True, slots=True)
class DayQuota:
    """The per-day cap of one account for one local day."""

    key: str  # the account's local date, e.g. "2026-03-08"
    limit: int
    end_ms: int  # first instant of the next local day: the counter's expiry and resume time
    count_if_missing: int | None = None  # sends already made that day, from the database


@dataclass(frozen=True, slots=True)
class Reservation:
    """Reserved send times (epoch ms, ascending) and why the reservation stopped."""

    times_ms: tuple[int, ...]
    outcome: Outcome
    resume_at_ms: int | None = None  # where to continue when outcome is CLOSED or DAY_FULL


class LimiterBackend(Protocol):
    """Atomic storage for per-account send reservations."""

    def reserve(
        self,
        account_key: str,
        *,
        windows: Sequence[Window],
        gaps_ms: Sequence[int],
        open_from_ms: int,
        open_until_ms: int,
        day: DayQuota | None = None,
        recent_if_missing: Sequence[int] | None = (),
    ) -> Reservation:
        """Reserve up to `len(gaps_ms)` send times for one account (see the module doc)."""
        ...

    def release(
        self,
        account_key: str,
        *,
        times_ms: Sequence[int],
        windows: Sequence[Window],
        day: str | None,
    ) -> None:
        """Give back reserved send times that will not be used (see the module doc).

        `windows` are the ones the slots were reserved under (their longest span says which
        slots are still tracked); `day` is the local day key they were counted under.
        """
        ...


def check_request(
    account_key: str,
    gaps_ms: Sequence[int],
    open_from_ms: int,
    open_until_ms: int,
    day: DayQuota | None,
    recent_if_missing: Sequence[int] | None = (),
) -> None:
    """Raise `ValueError` for a request no backend should accept."""
    if not account_key:
        raise ValueError("account_key must not be empty")
    if not 1 <= len(gaps_ms) <= MAX_SLOTS_PER_CALL:
        raise ValueError(f"reserve 1..{MAX_SLOTS_PER_CALL} slots per call, got {len(gaps_ms)}")
    if any(gap < 0 for gap in gaps_ms):
        raise ValueError("gaps_ms must not be negative")
    if open_until_ms <= open_from_ms:
        raise ValueError(f"empty open period [{open_from_ms}, {open_until_ms})")
    if day is not None and (day.limit <= 0 or (day.count_if_missing or 0) < 0):
        raise ValueError(f"invalid day quota {day}")
    if recent_if_missing and len(recent_if_missing) > MAX_SLOTS_PER_CALL:
        raise ValueError(f"seed at most {MAX_SLOTS_PER_CALL} recent sends")


def check_release(account_key: str, times_ms: Sequence[int]) -> None:
    """Raise `ValueError` for a release no backend should accept."""
    if not account_key:
        raise ValueError("account_key must not be empty")
    if not 1 <= len(times_ms) <= MAX_SLOTS_PER_CALL:
        raise ValueError(f"release 1..{MAX_SLOTS_PER_CALL} slots per call, got {len(times_ms)}")
    if any(t < 0 for t in times_ms):
        raise ValueError("times_ms must not be negative")
