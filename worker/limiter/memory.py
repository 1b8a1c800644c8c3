"""An in-process `LimiterBackend` with an injectable clock, for tests and single processes.

It follows `reserve.lua` step by step (see `worker.limiter.backend` for the semantics),
including key expiry, so a test against it says something about the Redis backend too. It
trims old slots on every call where the script trims only when its set would outgrow the
largest limit; slots that old bind no window, so the replies are the same.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from worker.limiter.backend import DayQuota, Outcome, Reservation, check_release, check_request
from worker.limiter.model import DAY_MS, Window

Clock = Callable[[], float]  # epoch seconds, like time.time


@dataclass
class _Account:
    slots_ms: list[int] = field(default_factory=list)  # ascending reserved send times
    last_ms: int | None = None
    state_expires_ms: int = 0  # the state (last_ms) is absent from then on, as in Redis
    days: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (count, expires)


class MemoryBackend:
    """Reservations kept in a dict; `clock()` returns epoch seconds (default `time.time`)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def day_count(self, account_key: str, day_key: str) -> int | None:
        """The stored count of a local day, `None` when absent (for tests)."""
        with self._lock:
            return self._day_count(self._account(account_key), day_key, self.now_ms())

    def forget_day(self, account_key: str, day_key: str) -> None:
        """Drop one day counter, as if Redis had lost it (for tests)."""
        with self._lock:
            self._account(account_key).days.pop(day_key, None)

    def forget_account(self, account_key: str) -> None:
        """Drop everything of one account, as a Redis restart without persistence does."""
        with self._lock:
            self._accounts.pop(account_key, None)

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
        """Reserve up to `len(gaps_ms)` send times (see `worker.limiter.backend`)."""
        check_request(account_key, gaps_ms, open_from_ms, open_until_ms, day, recent_if_missing)
        with self._lock:
            now_ms = self.now_ms()
            account = self._account(account_key)
            _trim(account, windows, now_ms)
            if account.state_expires_ms <= now_ms:
                refused = self._rebuild(account, windows, day, recent_if_missing, now_ms)
                if refused is not None:
                    return refused
            earliest_ms = max(now_ms, open_from_ms)
            times: list[int] = []
            used: int | None = None  # read once a slot fits, as reserve.lua does
            for gap_ms in gaps_ms:
                at_ms = _next_slot(account, windows, gap_ms, earliest_ms)
                if at_ms >= open_until_ms:
                    return self._done(account, day, used, times, Outcome.CLOSED, at_ms)
                if day is not None:
                    if used is None:
                        used = self._day_count(account, day.key, now_ms)
                        used = day.count_if_missing if used is None else used
                        if used is None:
                            return Reservation((), Outcome.DAY_COUNT_MISSING)
                    if used + len(times) >= day.limit:
                        return self._done(account, day, used, times, Outcome.DAY_FULL, day.end_ms)
                account.slots_ms.append(at_ms)
                account.last_ms = at_ms
                times.append(at_ms)
            return self._done(account, day, used, times, Outcome.RESERVED, None)

    def release(
        self,
        account_key: str,
        *,
        times_ms: Sequence[int],
        windows: Sequence[Window],
        day: str | None,
    ) -> None:
        """Give back reserved send times (see `worker.limiter.backend`), as release.lua does."""
        check_release(account_key, times_ms)
        with self._lock:
            now_ms = self.now_ms()
            account = self._account(account_key)
            longest = _longest_ms(windows)
            if longest > 0:
                for at_ms in times_ms:
                    _remove_one(account.slots_ms, at_ms)
                last_ms = account.last_ms if account.state_expires_ms > now_ms else None
                if last_ms is not None and last_ms in times_ms:
                    account.last_ms = _new_last(account.slots_ms, last_ms, now_ms - longest)
            if day is not None:
                count = self._day_count(account, day, now_ms)
                if count is not None:
                    expires_ms = account.days[day][1]
                    account.days[day] = (max(0, count - len(times_ms)), expires_ms)

    def _rebuild(
        self,
        account: _Account,
        windows: Sequence[Window],
        day: DayQuota | None,
        recent_ms: Sequence[int] | None,
        now_ms: int,
    ) -> Reservation | None:
        """An absent state: refuse as reserve.lua does, or rebuild it from `recent_ms`."""
        if recent_ms is None:
            return Reservation((), Outcome.STATE_MISSING)
        if (
            day is not None
            and day.count_if_missing is None
            and self._day_count(account, day.key, now_ms) is None
        ):
            return Reservation((), Outcome.DAY_COUNT_MISSING)  # before anything is stored
        newest = max(recent_ms, default=None)
        longest = _longest_ms(windows)
        if longest > 0:
            for at_ms in recent_ms:
                if at_ms > now_ms - longest:
                    bisect.insort(account.slots_ms, at_ms)
            if account.slots_ms and (newest is None or account.slots_ms[-1] > newest):
                newest = account.slots_ms[-1]  # a slot that outlived the state
        account.last_ms = newest
        account.state_expires_ms = max(newest or 0, now_ms) + DAY_MS
        return None

    @staticmethod
    def _done(
        account: _Account,
        day: DayQuota | None,
        used: int | None,
        times: list[int],
        outcome: Outcome,
        resume_at_ms: int | None,
    ) -> Reservation:
        """Store the day count and the last send's expiry; build the reply."""
        if day is not None and used is not None:
            account.days[day.key] = (used + len(times), day.end_ms + DAY_MS)
        if times:
            account.state_expires_ms = times[-1] + DAY_MS
        return Reservation(tuple(times), outcome, resume_at_ms)

    def _account(self, account_key: str) -> _Account:
        return self._accounts.setdefault(account_key, _Account())

    @staticmethod
    def _day_count(account: _Account, day_key: str, now_ms: int) -> int | None:
        count, expires_ms = account.days.get(day_key, (0, 0))
        return count if expires_ms > now_ms else None


def _longest_ms(windows: Sequence[Window]) -> int:
    return max((w.span_ms for w in windows), default=0)


def _trim(account: _Account, windows: Sequence[Window], now_ms: int) -> None:
    """Forget what Redis would have expired or trimmed: an old last send, unseen slots."""
    if account.last_ms is not None and account.state_expires_ms <= now_ms:
        account.last_ms = None
    cut = bisect.bisect_right(account.slots_ms, now_ms - _longest_ms(windows))
    del account.slots_ms[:cut]


def _remove_one(slots_ms: list[int], at_ms: int) -> None:
    """Remove one slot at `at_ms`, if there is one."""
    i = bisect.bisect_left(slots_ms, at_ms)
    if i < len(slots_ms) and slots_ms[i] == at_ms:
        del slots_ms[i]


def _new_last(slots_ms: list[int], last_ms: int, floor_ms: int) -> int:
    """After the latest slot went back: the latest slot left after `floor_ms`, else the floor.

    Never later than before: slots are only appended in time order.
    """
    anchor = slots_ms[-1] if slots_ms and slots_ms[-1] > floor_ms else floor_ms
    return min(last_ms, anchor)


def _next_slot(account: _Account, windows: Sequence[Window], gap_ms: int, earliest_ms: int) -> int:
    """The earliest time the next slot may take: after the gap and inside every window."""
    last = account.last_ms
    at_ms = earliest_ms if last is None else max(earliest_ms, last + gap_ms)
    for window in windows:
        if len(account.slots_ms) >= window.limit:
            at_ms = max(at_ms, account.slots_ms[-window.limit] + window.span_ms)
    return at_ms
