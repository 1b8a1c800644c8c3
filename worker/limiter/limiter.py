"""`AccountLimiter`: when may one sender account send next? The policy above a backend.

It turns a `Policy` into backend requests: it skips quiet hours and moves past full local
days (both in the account's time zone), draws the random human-like gaps (the backend never
draws randomness), slows everything down by `rate_multiplier`, and rebuilds a lost day count
from the database through `day_counter` (and the windows' recent sends through
`recent_sends`); `release` gives back slots that were not used.
The backend does the atomic part.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import UserError
from worker.limiter.backend import (
    MAX_SLOTS_PER_CALL,
    DayQuota,
    LimiterBackend,
    Outcome,
    Reservation,
)
from worker.limiter.localtime import LocalCalendar, LocalDay, OpenPeriod
from worker.limiter.model import AccountLimits, Policy, Window, check_multiplier

DayCounter = Callable[[LocalDay], int]  # sends already made on a local day, from the database
# Epoch-ms times of the sends the database recorded in [from_ms, to_ms), newest first.
RecentSends = Callable[[int, int], Sequence[int]]
DEFAULT_WINDOW_MARGIN_MS = 50


@dataclass(frozen=True, slots=True)
class Slots:
    """Reserved send times, and when to ask again if fewer than requested were reserved."""

    times_s: list[float]  # epoch seconds, ascending
    next_open_s: float | None = None  # set when the reservation stopped early


def zone(tz: str | ZoneInfo) -> ZoneInfo:
    """A `ZoneInfo` from an IANA name; an unknown name is a `UserError`."""
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        expected = "an IANA name such as Asia/Shanghai"
        raise UserError(f"unknown time zone {tz!r} (expected {expected})") from None


class AccountLimiter:
    """Reserves send times for one account under its policy, shared by every process.

    `clock` returns epoch seconds and `rng` draws the gaps; pass fakes in tests. With the
    Redis backend the reserved times follow Redis `TIME`; `clock` only locates the local day
    and quiet hours, so hosts should keep their clocks in sync (NTP).

    `day_counter` and `recent_sends` read the database when Redis has nothing for the account
    (a new account, or Redis lost its data): the day's count, and the sends of the longest
    window before now (and the last one, for the gap), so no window is exceeded after a loss.
    A new account costs one more round trip once; an account with state costs nothing more.

    `window_margin_ms` widens every window a little: slots packed exactly at a window's edge
    would otherwise exceed the limit as soon as one send leaves a few ms late (scheduling,
    network), which is how a platform sees them.
    """

    def __init__(
        self,
        policy: Policy,
        account_key: str,
        tz: str | ZoneInfo,
        backend: LimiterBackend,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        rate_multiplier: float = 1.0,
        day_counter: DayCounter | None = None,
        recent_sends: RecentSends | None = None,
        window_margin_ms: int = DEFAULT_WINDOW_MARGIN_MS,
    ) -> None:
        if not account_key:
            raise ValueError("account_key must not be empty")
        self.policy = policy
        self.account_key = account_key
        self.backend = backend
        self.calendar = LocalCalendar(zone(tz), policy.account.quiet_hours)
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (human-like gaps, not secrets)
        self._day_counter = day_counter
        self._recent_sends = recent_sends
        if window_margin_ms < 0:
            raise ValueError(f"window_margin_ms must not be negative, got {window_margin_ms}")
        self._margin_ms = window_margin_ms
        self._period: OpenPeriod | None = None
        self._quota: tuple[LocalDay, DayQuota] | None = None
        self.rate_multiplier = rate_multiplier

    @property
    def rate_multiplier(self) -> float:
        """How much of the policy's rate is used now (0 < m <= 1); back-off logic sets it."""
        return self._multiplier

    @rate_multiplier.setter
    def rate_multiplier(self, value: float) -> None:
        check_multiplier(value)
        self._multiplier = float(value)
        self.limits: AccountLimits = self.policy.account.scaled(value)
        self._windows = tuple(
            Window(w.span_ms + self._margin_ms, w.limit) for w in self.limits.windows()
        )
        self._unlimited = self.limits.is_unlimited
        self._quota = None
        self._lookback_ms = max(
            max((w.span_ms for w in self._windows), default=0),
            math.ceil(self.limits.max_gap_s * 1000),
        )
        # Without windows or gaps the account's state holds nothing the database must rebuild.
        self._recent_arg: tuple[()] | None = None
        if self._recent_sends is None or self._lookback_ms == 0:
            self._recent_arg = ()
        self._recent_most = min(
            MAX_SLOTS_PER_CALL, max((w.limit for w in self._windows), default=1)
        )

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows in force: the policy's, scaled by health, widened by the margin."""
        return self._windows

    def reserve(self, count: int = 1, *, not_before: float | None = None) -> list[float]:
        """`count` epoch-second send times, ascending, each already counted against the limits.

        Times may lie in the future (wait until each before sending) and on later days when
        today is full. `not_before` (epoch seconds) delays the first one, for cooldowns and
        campaign starts.
        """
        times_ms, _ = self._reserve_from(count, not_before, None)
        return [t / 1000 for t in times_ms]

    def reserve_until(
        self, count: int, *, not_before: float | None = None, not_after: float | None = None
    ) -> Slots:
        """Like `reserve`, but only times before `not_after` (a lane's slice end).

        Reserving a slot nobody uses wastes it (it still counts), so a lane that stops at the
        end of its slice should not reserve beyond it. When fewer than `count` fit,
        `next_open_s` says when to ask again.
        """
        until_ms = None if not_after is None else math.floor(not_after * 1000)
        times_ms, next_ms = self._reserve_from(count, not_before, until_ms)
        return Slots([t / 1000 for t in times_ms], None if next_ms is None else next_ms / 1000)

    def release(self, times_s: Sequence[float]) -> None:
        """Give back reserved send times that will not be used: they then count nowhere.

        For a recipient skipped after its slot was reserved, a late wake-up that takes a fresh
        slot instead, a batch cut short: each slot leaves every window and its local day's
        count, so the day's budget is not lost. Release only times this account reserved,
        each at most once.
        """
        if self._unlimited:
            return
        for day_key, times_ms in self._by_day(times_s).items():
            for i in range(0, len(times_ms), MAX_SLOTS_PER_CALL):
                self.backend.release(
                    self.account_key,
                    times_ms=times_ms[i : i + MAX_SLOTS_PER_CALL],
                    windows=self._windows,
                    day=day_key,
                )

    def _by_day(self, times_s: Sequence[float]) -> dict[str | None, list[int]]:
        """Epoch-ms times by the key of the local day they count under (`None`: no day cap)."""
        groups: dict[str | None, list[int]] = {}
        day: LocalDay | None = None
        for at_s in times_s:
            at_ms = round(at_s * 1000)
            if self.limits.per_day is not None and (
                day is None or not day.start_ms <= at_ms < day.end_ms
            ):
                day = self.calendar.local_day(at_ms)
            groups.setdefault(None if day is None else day.key, []).append(at_ms)
        return groups

    def batch_size(self, default: int, horizon_s: float = 30.0) -> int:
        """How many sends the limits allow within `horizon_s` at best, between 1 and `default`.

        A lane claims this many rows, so claims stay small for slow accounts.
        """
        cap = default
        for window in self._windows:
            cap = min(cap, window.limit * max(1, math.ceil(horizon_s * 1000 / window.span_ms)))
        if self.limits.has_gap:
            mean_gap_s = (self.limits.min_gap_s + self.limits.max_gap_s) / 2
            cap = min(cap, 1 + math.floor(horizon_s / max(mean_gap_s, 1e-3)))
        if self.limits.per_day is not None:
            cap = min(cap, self.limits.per_day)
        return max(1, cap)

    def _reserve_from(
        self, count: int, not_before: float | None, until_ms: int | None
    ) -> tuple[list[int], int | None]:
        """`_reserve_ms` from now by `clock`, or from `not_before` when later."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        if count == 0:
            return [], None
        at_ms = int(self._clock() * 1000)
        if not_before is not None:
            at_ms = max(at_ms, math.ceil(not_before * 1000))
        return self._reserve_ms(count, at_ms, until_ms)

    def _reserve_ms(
        self, count: int, at_ms: int, until_ms: int | None
    ) -> tuple[list[int], int | None]:
        """Walk open periods from `at_ms` until `count` slots are reserved or `until_ms`."""
        gaps_ms = self._draw_gaps(count)
        times: list[int] = []
        for _ in range(8 * count + 64):
            period = self._open_period(at_ms)
            start_ms = max(at_ms, period.start_ms)
            if until_ms is not None and start_ms >= until_ms:
                return times, start_ms
            end_ms = period.end_ms if until_ms is None else min(period.end_ms, until_ms)
            got = self._ask(period, start_ms, end_ms, gaps_ms[len(times) :])
            times += got.times_ms
            if got.outcome is Outcome.RESERVED:
                return times, None
            at_ms = max(at_ms, got.resume_at_ms or end_ms)
        raise RuntimeError(f"{self.account_key}: no progress reserving {count} slots")

    def _ask(self, period: OpenPeriod, from_ms: int, until_ms: int, gaps: list[int]) -> Reservation:
        """One backend call inside one open period (rebuilding a missing day count)."""
        if self._unlimited:
            return Reservation((from_ms,) * len(gaps), Outcome.RESERVED)
        day = self._day_quota(period.day)
        recent: Sequence[int] | None = self._recent_arg
        got = self._call(gaps, from_ms, until_ms, day, recent)
        if got.outcome is Outcome.STATE_MISSING:  # count the day too: one retry for both
            recent, day = self._recent_sends_ms(), self._counted(day, period.day)
            got = self._call(gaps, from_ms, until_ms, day, recent)
        if got.outcome is Outcome.DAY_COUNT_MISSING and day and self._day_counter:
            got = self._call(gaps, from_ms, until_ms, self._counted(day, period.day), recent)
        return got

    def _call(
        self,
        gaps: list[int],
        from_ms: int,
        until_ms: int,
        day: DayQuota | None,
        recent: Sequence[int] | None,
    ) -> Reservation:
        """One `backend.reserve` for this account and its windows."""
        return self.backend.reserve(
            self.account_key,
            windows=self._windows,
            gaps_ms=gaps,
            open_from_ms=from_ms,
            open_until_ms=until_ms,
            day=day,
            recent_if_missing=recent,
        )

    def _counted(self, day: DayQuota | None, local_day: LocalDay) -> DayQuota | None:
        """`day` with the database's count of its sends as the seed, if it has none yet."""
        if day is None or day.count_if_missing is not None or self._day_counter is None:
            return day
        return replace(day, count_if_missing=self._day_counter(local_day))

    def _recent_sends_ms(self) -> list[int]:
        """The database's sends that can bind a window or the gap: those of one lookback.

        Ascending, at most the largest window limit (older ones cannot bind) and at least one
        (the last send, for the gap).
        """
        if self._recent_sends is None:
            return []
        now_ms = int(self._clock() * 1000)
        found = self._recent_sends(now_ms - self._lookback_ms, now_ms + self._lookback_ms)
        return sorted(found)[-self._recent_most :]

    def _day_quota(self, day: LocalDay) -> DayQuota | None:
        """The per-day cap of a local day for the backend, cached like the open period."""
        if self.limits.per_day is None:
            return None
        if self._quota is None or self._quota[0] is not day:
            seed = None if self._day_counter else 0
            self._quota = (day, DayQuota(day.key, self.limits.per_day, day.end_ms, seed))
        return self._quota[1]

    def _open_period(self, at_ms: int) -> OpenPeriod:
        """The open period at or after `at_ms`, cached: most calls fall in the last one."""
        if self._period is None or not self._period.contains(at_ms):
            self._period = self.calendar.open_period(at_ms)
        return self._period

    def _draw_gaps(self, count: int) -> list[int]:
        """One random gap per slot (ms, rounded up so no gap falls short of min_gap_s)."""
        low, high = self.limits.min_gap_s, self.limits.max_gap_s
        if high <= 0:
            return [0] * count
        return [math.ceil(self._rng.uniform(low, high) * 1000) for _ in range(count)]
