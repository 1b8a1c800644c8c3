"""AccountLimiter on the memory backend with a fake clock: exact times, local calendars."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from worker.errors import UserError
from worker.limiter.backend import DayQuota, Reservation
from worker.limiter.limiter import AccountLimiter
from worker.limiter.localtime import LocalDay
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import AccountLimits, Policy, QuietHours

from .timeutil import FakeClock, epoch_s, local_iso, utc_iso


def limiter(
    limits: AccountLimits,
    start_iso: str,
    tz: str = "Asia/Shanghai",
    **kwargs: Any,
) -> tuple[AccountLimiter, FakeClock, MemoryBackend]:
    clock = FakeClock(epoch_s(start_iso))
    backend = MemoryBackend(clock)
    kwargs.setdefault("window_margin_ms", 0)  # exact window edges, to state exact times
    made = AccountLimiter(
        Policy("test", limits), "acct", tz, backend, clock=clock, rng=random.Random(7), **kwargs
    )
    return made, clock, backend


NIGHT = QuietHours(22 * 60, 8 * 60)


def test_a_send_asked_for_at_night_in_shanghai_waits_for_eight_local() -> None:
    made, _, _ = limiter(
        AccountLimits(per_second=1, quiet_hours=NIGHT), "2026-05-01T23:00:00+08:00"
    )
    times = made.reserve(2)
    assert [local_iso(t, "Asia/Shanghai") for t in times] == [
        "2026-05-02T08:00:00+08:00",
        "2026-05-02T08:00:01+08:00",
    ]


def test_sends_stop_at_quiet_hours_and_resume_after_them() -> None:
    limits = AccountLimits(min_gap_s=600, max_gap_s=600, quiet_hours=NIGHT)
    made, _, _ = limiter(limits, "2026-05-01T21:35:00+08:00")
    times = made.reserve(4)
    assert [local_iso(t, "Asia/Shanghai")[11:16] for t in times] == [
        "21:35",
        "21:45",
        "21:55",
        "08:00",
    ]


def test_new_york_spring_forward_quiet_hours_end_when_the_clock_jumps() -> None:
    limits = AccountLimits(per_second=1, quiet_hours=QuietHours(22 * 60, 2 * 60 + 30))
    made, _, _ = limiter(limits, "2026-03-07T23:00:00-05:00", tz="America/New_York")
    assert [utc_iso(t) for t in made.reserve(1)] == ["2026-03-08T07:00:00+00:00"]


def test_new_york_fall_back_repeats_the_quiet_part_of_the_hour() -> None:
    limits = AccountLimits(min_gap_s=600, max_gap_s=600, quiet_hours=QuietHours(22 * 60, 90))
    made, _, _ = limiter(limits, "2026-10-31T23:00:00-04:00", tz="America/New_York")
    times = made.reserve(5)
    assert [local_iso(t, "America/New_York") for t in times] == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:40:00-04:00",
        "2026-11-01T01:50:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T01:40:00-05:00",
    ]


def test_a_full_local_day_moves_to_the_next_one_after_quiet_hours() -> None:
    made, _, _ = limiter(AccountLimits(per_day=2, quiet_hours=NIGHT), "2026-05-01T10:00:00+08:00")
    times = made.reserve(3)
    assert [local_iso(t, "Asia/Shanghai") for t in times] == [
        "2026-05-01T10:00:00+08:00",
        "2026-05-01T10:00:00+08:00",
        "2026-05-02T08:00:00+08:00",
    ]


def test_the_day_is_the_accounts_local_day_not_utc() -> None:
    # 23:30 UTC on May 1 is already May 2 in Shanghai, so a full May 2 waits for May 3.
    made, _, _ = limiter(AccountLimits(per_day=1), "2026-05-01T23:30:00+00:00")
    times = made.reserve(2)
    assert [local_iso(t, "Asia/Shanghai") for t in times] == [
        "2026-05-02T07:30:00+08:00",
        "2026-05-03T00:00:00+08:00",
    ]


def test_a_lost_day_count_is_rebuilt_from_the_database_once() -> None:
    asked: list[str] = []

    def sent_on(day: LocalDay) -> int:
        asked.append(day.key)
        return 3 if day.key == "2026-05-01" else 0

    limits = AccountLimits(per_day=5)
    made, _, backend = limiter(limits, "2026-05-01T10:00:00+08:00", day_counter=sent_on)
    first = made.reserve(3)
    assert [local_iso(t, "Asia/Shanghai")[:10] for t in first] == ["2026-05-01"] * 2 + [
        "2026-05-02"
    ]
    assert asked == ["2026-05-01", "2026-05-02"]
    made.reserve(1)
    assert asked == ["2026-05-01", "2026-05-02"]  # stored counts are trusted
    backend.forget_day("acct", "2026-05-02")
    made.reserve(1)
    assert asked == ["2026-05-01", "2026-05-02", "2026-05-02"]


def test_without_a_day_counter_a_missing_day_starts_at_zero() -> None:
    made, _, backend = limiter(AccountLimits(per_day=2), "2026-05-01T10:00:00+08:00")
    made.reserve(1)
    assert backend.day_count("acct", "2026-05-01") == 1


def test_not_before_delays_the_first_send() -> None:
    made, clock, _ = limiter(AccountLimits(per_second=2), "2026-05-01T10:00:00+08:00")
    times = made.reserve(3, not_before=clock.now_s + 60.5)
    assert [t - clock.now_s for t in times] == [60.5, 60.5, 61.5]


def test_a_not_before_inside_quiet_hours_moves_to_their_end() -> None:
    made, _clock, _ = limiter(AccountLimits(quiet_hours=NIGHT), "2026-05-01T10:00:00+08:00")
    times = made.reserve(1, not_before=epoch_s("2026-05-01T23:00:00+08:00"))
    assert local_iso(times[0], "Asia/Shanghai") == "2026-05-02T08:00:00+08:00"


def test_reserve_until_reserves_nothing_past_the_horizon() -> None:
    made, clock, _ = limiter(AccountLimits(per_second=1), "2026-05-01T10:00:00+08:00")
    slots = made.reserve_until(5, not_after=clock.now_s + 2.5)
    assert [t - clock.now_s for t in slots.times_s] == [0, 1, 2]
    assert slots.next_open_s == clock.now_s + 3  # when the next slot could go
    assert [t - clock.now_s for t in made.reserve(1)] == [3]  # nothing was wasted


def test_reserve_until_says_when_quiet_hours_end() -> None:
    made, clock, _ = limiter(AccountLimits(quiet_hours=NIGHT), "2026-05-01T23:00:00+08:00")
    slots = made.reserve_until(1, not_after=clock.now_s + 60)
    assert slots.times_s == []
    assert slots.next_open_s == epoch_s("2026-05-02T08:00:00+08:00")


def test_the_rate_multiplier_lowers_window_limits_and_lengthens_gaps() -> None:
    made, clock, _ = limiter(
        AccountLimits(per_second=4, min_gap_s=0.1, max_gap_s=0.1),
        "2026-05-01T10:00:00+08:00",
        rate_multiplier=0.5,
    )
    assert made.limits.per_second == 2
    assert made.limits.min_gap_s == pytest.approx(0.2)
    times = [round(t - clock.now_s, 3) for t in made.reserve(3)]
    assert times == [0, 0.2, 1.0]
    made.rate_multiplier = 1.0
    assert made.limits.per_second == 4


@pytest.mark.parametrize("bad", [0, -0.5, 1.5])
def test_a_rate_multiplier_outside_0_to_1_is_refused(bad: float) -> None:
    made, _, _ = limiter(AccountLimits(per_second=4), "2026-05-01T10:00:00+08:00")
    with pytest.raises(ValueError, match="rate_multiplier"):
        made.rate_multiplier = bad


def test_gaps_are_drawn_between_min_and_max() -> None:
    made, _clock, _ = limiter(AccountLimits(min_gap_s=2, max_gap_s=8), "2026-05-01T10:00:00+08:00")
    times = made.reserve(50)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(2 <= g <= 8.001 for g in gaps)
    assert len({round(g, 3) for g in gaps}) > 10  # random, not a fixed cadence


class RefusingBackend:
    """A backend that must not be called."""

    def reserve(self, account_key: str, **_: object) -> Reservation:
        raise AssertionError("an unlimited policy needs no backend")


def test_an_unlimited_policy_only_respects_quiet_hours() -> None:
    clock = FakeClock(epoch_s("2026-05-01T23:00:00+08:00"))
    made = AccountLimiter(
        Policy("open", AccountLimits(quiet_hours=NIGHT)),
        "a",
        "Asia/Shanghai",
        RefusingBackend(),
        clock=clock,
    )
    times = made.reserve(3)
    assert times == [epoch_s("2026-05-02T08:00:00+08:00")] * 3


class RecordingBackend(MemoryBackend):
    """Remembers the day quotas it was asked about."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.quotas: list[DayQuota | None] = []

    def reserve(
        self, account_key: str, *, day: DayQuota | None = None, **kwargs: Any
    ) -> Reservation:
        self.quotas.append(day)
        return super().reserve(account_key, day=day, **kwargs)


def test_the_backend_gets_the_local_day_key_and_its_end() -> None:
    clock = FakeClock(epoch_s("2026-03-08T12:00:00-04:00"))
    backend = RecordingBackend(clock)
    made = AccountLimiter(
        Policy("p", AccountLimits(per_day=9)), "a", "America/New_York", backend, clock=clock
    )
    made.reserve(1)
    quota = backend.quotas[-1]
    assert quota is not None
    assert (quota.key, quota.limit) == ("2026-03-08", 9)
    assert utc_iso(quota.end_ms / 1000) == "2026-03-09T04:00:00+00:00"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (AccountLimits(), 200),
        (AccountLimits(per_second=5), 150),
        (AccountLimits(per_minute=4, min_gap_s=6, max_gap_s=20), 3),
        (AccountLimits(per_day=20), 20),
        (AccountLimits(per_hour=600), 200),
    ],
)
def test_batch_size_fits_what_the_limits_allow_in_the_horizon(
    limits: AccountLimits, expected: int
) -> None:
    made, _, _ = limiter(limits, "2026-05-01T10:00:00+08:00")
    assert made.batch_size(200, horizon_s=30) == expected


def test_an_unknown_time_zone_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown time zone 'Mars/Olympus'"):
        limiter(AccountLimits(), "2026-05-01T10:00:00+08:00", tz="Mars/Olympus")


def test_zero_slots_cost_nothing_and_negative_counts_are_refused() -> None:
    made, _, backend = limiter(AccountLimits(per_day=1), "2026-05-01T10:00:00+08:00")
    assert made.reserve(0) == []
    assert backend.day_count("acct", "2026-05-01") is None
    with pytest.raises(ValueError, match="count must not be negative"):
        made.reserve(-1)


def test_an_account_booked_months_ahead_finds_its_next_day_in_a_few_calls() -> None:
    clock = FakeClock(epoch_s("2026-05-01T10:00:00+08:00"))
    backend = RecordingBackend(clock)
    made = AccountLimiter(
        Policy("p", AccountLimits(per_day=1)), "a", "Asia/Shanghai", backend, clock=clock
    )
    for _ in range(120):
        made.reserve(1)
    calls_before = len(backend.quotas)
    last = made.reserve(1)
    assert local_iso(last[0], "Asia/Shanghai")[:10] == "2026-08-29"  # the 121st day
    assert len(backend.quotas) - calls_before <= 3


def test_the_window_margin_keeps_slots_off_the_exact_window_edge() -> None:
    made, clock, _ = limiter(
        AccountLimits(per_second=2), "2026-05-01T10:00:00+08:00", window_margin_ms=50
    )
    assert [round(t - clock.now_s, 3) for t in made.reserve(5)] == [0, 0, 1.05, 1.05, 2.1]


def test_a_negative_window_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="window_margin_ms"):
        limiter(AccountLimits(per_second=2), "2026-05-01T10:00:00+08:00", window_margin_ms=-1)
