"""The reservation primitive, exactly, on the in-memory backend with a fake clock."""

from __future__ import annotations

import pytest

from worker.limiter.backend import DayQuota, Outcome
from worker.limiter.memory import MemoryBackend
from worker.limiter.model import HOUR_MS, Window

from .timeutil import FakeClock

T0_S = 1_780_000_000.0
T0 = int(T0_S * 1000)
FAR = T0 + 365 * 24 * HOUR_MS
PER_SECOND_2 = (Window(1000, 2),)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0_S)


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock)


def relative(times: tuple[int, ...]) -> list[int]:
    return [t - T0 for t in times]


def test_a_batch_fills_each_window_then_waits_for_it_to_slide(backend: MemoryBackend) -> None:
    got = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0] * 5, open_from_ms=T0, open_until_ms=FAR
    )
    assert got.outcome is Outcome.RESERVED
    assert relative(got.times_ms) == [0, 0, 1000, 1000, 2000]


def test_every_window_binds_at_once(backend: MemoryBackend) -> None:
    windows = (Window(1000, 2), Window(60_000, 3))
    got = backend.reserve("a", windows=windows, gaps_ms=[0] * 5, open_from_ms=T0, open_until_ms=FAR)
    assert relative(got.times_ms) == [0, 0, 1000, 60_000, 60_000]


def test_each_slot_keeps_its_own_gap_from_the_previous_one(backend: MemoryBackend) -> None:
    got = backend.reserve(
        "a", windows=(), gaps_ms=[900, 300, 700], open_from_ms=T0, open_until_ms=FAR
    )
    assert relative(got.times_ms) == [0, 300, 1000]  # the first slot has no previous send


def test_future_slots_count_at_once_for_the_next_caller(backend: MemoryBackend) -> None:
    first = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0] * 3, open_from_ms=T0, open_until_ms=FAR
    )
    second = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0] * 2, open_from_ms=T0, open_until_ms=FAR
    )
    assert relative(first.times_ms) == [0, 0, 1000]
    assert relative(second.times_ms) == [1000, 2000]


def test_the_gap_is_kept_across_calls(backend: MemoryBackend) -> None:
    backend.reserve("a", windows=(), gaps_ms=[0], open_from_ms=T0, open_until_ms=FAR)
    got = backend.reserve("a", windows=(), gaps_ms=[5000], open_from_ms=T0, open_until_ms=FAR)
    assert relative(got.times_ms) == [5000]


def test_accounts_do_not_share_limits(backend: MemoryBackend) -> None:
    for account in ("a", "b"):
        got = backend.reserve(
            account, windows=PER_SECOND_2, gaps_ms=[0, 0], open_from_ms=T0, open_until_ms=FAR
        )
        assert relative(got.times_ms) == [0, 0]


def test_nothing_is_placed_before_now_or_open_from(backend: MemoryBackend) -> None:
    early = backend.reserve("a", windows=(), gaps_ms=[0], open_from_ms=T0 - 5000, open_until_ms=FAR)
    late = backend.reserve("b", windows=(), gaps_ms=[0], open_from_ms=T0 + 5000, open_until_ms=FAR)
    assert relative(early.times_ms) == [0]
    assert relative(late.times_ms) == [5000]


def test_a_slot_past_the_open_period_is_not_reserved(backend: MemoryBackend) -> None:
    got = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0] * 5, open_from_ms=T0, open_until_ms=T0 + 1500
    )
    assert relative(got.times_ms) == [0, 0, 1000, 1000]
    assert (got.outcome, got.resume_at_ms) == (Outcome.CLOSED, T0 + 2000)  # the next slot's time
    after = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0], open_from_ms=T0, open_until_ms=FAR
    )
    assert relative(after.times_ms) == [2000]  # the refused slot was not counted


def test_a_full_day_stops_the_batch_and_points_at_the_next_day(backend: MemoryBackend) -> None:
    day = DayQuota("2026-05-28", limit=3, end_ms=T0 + HOUR_MS, count_if_missing=1)
    got = backend.reserve(
        "a", windows=(), gaps_ms=[0] * 5, open_from_ms=T0, open_until_ms=T0 + HOUR_MS, day=day
    )
    assert len(got.times_ms) == 2
    assert (got.outcome, got.resume_at_ms) == (Outcome.DAY_FULL, T0 + HOUR_MS)
    assert backend.day_count("a", "2026-05-28") == 3


def test_a_missing_day_count_is_asked_for_before_anything_is_reserved(
    backend: MemoryBackend,
) -> None:
    day = DayQuota("2026-05-28", limit=3, end_ms=T0 + HOUR_MS)
    got = backend.reserve("a", windows=(), gaps_ms=[0], open_from_ms=T0, open_until_ms=FAR, day=day)
    assert (got.outcome, got.times_ms) == (Outcome.DAY_COUNT_MISSING, ())
    assert backend.day_count("a", "2026-05-28") is None


def test_a_stored_day_count_wins_over_the_seed(backend: MemoryBackend) -> None:
    seeded = DayQuota("2026-05-28", limit=3, end_ms=T0 + HOUR_MS, count_if_missing=2)
    backend.reserve("a", windows=(), gaps_ms=[0], open_from_ms=T0, open_until_ms=FAR, day=seeded)
    again = DayQuota("2026-05-28", limit=3, end_ms=T0 + HOUR_MS, count_if_missing=0)
    got = backend.reserve(
        "a", windows=(), gaps_ms=[0, 0], open_from_ms=T0, open_until_ms=FAR, day=again
    )
    assert len(got.times_ms) == 0
    assert got.outcome is Outcome.DAY_FULL


def test_old_slots_stop_counting_once_their_window_has_passed(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    hourly = (Window(HOUR_MS, 1),)
    backend.reserve("a", windows=hourly, gaps_ms=[0], open_from_ms=T0, open_until_ms=FAR)
    clock.advance(3600)
    got = backend.reserve("a", windows=hourly, gaps_ms=[0], open_from_ms=T0, open_until_ms=FAR)
    assert relative(got.times_ms) == [HOUR_MS]


def test_a_day_counter_expires_a_day_after_its_day(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    day = DayQuota("2026-05-28", limit=3, end_ms=T0 + HOUR_MS, count_if_missing=0)
    backend.reserve(
        "a", windows=(), gaps_ms=[0], open_from_ms=T0, open_until_ms=T0 + HOUR_MS, day=day
    )
    clock.advance(24 * 3600)
    assert backend.day_count("a", "2026-05-28") == 1
    clock.advance(3600)
    assert backend.day_count("a", "2026-05-28") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gaps_ms": []}, "reserve 1..10000 slots"),
        ({"gaps_ms": [-1]}, "must not be negative"),
        ({"open_until_ms": T0}, "empty open period"),
    ],
)
def test_malformed_requests_are_value_errors(
    backend: MemoryBackend, kwargs: dict[str, object], message: str
) -> None:
    request: dict[str, object] = {
        "windows": (),
        "gaps_ms": [0],
        "open_from_ms": T0,
        "open_until_ms": FAR,
    }
    request.update(kwargs)
    with pytest.raises(ValueError, match=message):
        backend.reserve("a", **request)  # type: ignore[arg-type]


def test_a_period_already_booked_is_skipped_without_asking_for_its_day_count(
    backend: MemoryBackend,
) -> None:
    backend.reserve("a", windows=(), gaps_ms=[0], open_from_ms=T0 + 5 * HOUR_MS, open_until_ms=FAR)
    day = DayQuota("2026-05-28", limit=3, end_ms=T0 + HOUR_MS)  # no seed: would ask
    got = backend.reserve(
        "a", windows=(), gaps_ms=[60_000], open_from_ms=T0, open_until_ms=T0 + HOUR_MS, day=day
    )
    assert (got.outcome, got.resume_at_ms) == (Outcome.CLOSED, T0 + 5 * HOUR_MS + 60_000)


def test_a_slot_exactly_at_open_until_is_not_reserved(backend: MemoryBackend) -> None:
    got = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0] * 5, open_from_ms=T0, open_until_ms=T0 + 2000
    )
    assert relative(got.times_ms) == [0, 0, 1000, 1000]
    assert (got.outcome, got.resume_at_ms) == (Outcome.CLOSED, T0 + 2000)


def test_a_slot_one_ms_before_open_until_is_reserved(backend: MemoryBackend) -> None:
    got = backend.reserve(
        "a", windows=PER_SECOND_2, gaps_ms=[0] * 5, open_from_ms=T0, open_until_ms=T0 + 2001
    )
    assert relative(got.times_ms) == [0, 0, 1000, 1000, 2000]
    assert got.outcome is Outcome.RESERVED
