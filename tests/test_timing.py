"""A lane's send timing (`worker.dispatch.timing`), on a fake clock: no real sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from worker.dispatch.sendlog import SendLog
from worker.dispatch.timing import LATE_S, SendTimer
from worker.limiter import Window


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Lease:
    """A fence that keeps `good` times, then fails (None: always keeps)."""

    def __init__(self, good: int | None = None) -> None:
        self.good = good
        self.renewals = 0

    def keep(self) -> bool:
        self.renewals += 1
        return self.good is None or self.renewals <= self.good


class Pacer:
    """Hands out the given fresh slots; records what it was asked."""

    next_open_s: float | None = None

    def __init__(self, fresh: list[float]) -> None:
        self.fresh = fresh
        self.asked: list[tuple[int, float | None]] = []
        self.paced: list[bool] = []

    def batch_size(self, default: int) -> int:
        return default

    def reserve(
        self, count: int, *, not_after: float | None = None, paced: bool = True
    ) -> list[float]:
        self.asked.append((count, not_after))
        self.paced.append(paced)
        return [t for t in self.fresh if not_after is None or t < not_after][:count]

    released: list[float]

    def release(self, times: list[float]) -> None:
        self.released = [*getattr(self, "released", []), *times]


def make_timer(clock: Clock, lease: Lease, pacer: Any = None) -> SendTimer:
    # ctx is only read to load the send log of a limiter-paced lane; these pacers are not.
    return SendTimer(
        None,  # type: ignore[arg-type]
        1,
        lease,  # type: ignore[arg-type]
        pacer or Pacer([]),
        clock=clock,
        sleep=clock.sleep,
    )


def test_waiting_sleeps_in_steps_of_a_second_and_renews_the_lease_after_each() -> None:
    clock, lease = Clock(), Lease()
    timer = make_timer(clock, lease)
    assert timer.wait_until(3.5) is True
    assert clock.now == 3.5 and clock.sleeps == [1.0, 1.0, 1.0, 0.5]
    assert lease.renewals == 4 and not timer.lease_lost
    assert timer.wait_until(2.0) is True and lease.renewals == 4  # the past: no wait


def test_a_lost_lease_ends_the_wait_and_stays_lost() -> None:
    clock, lease = Clock(), Lease(good=2)
    timer = make_timer(clock, lease)
    assert timer.wait_until(10.0) is False
    assert timer.lease_lost and clock.now == 3.0


def test_a_wake_within_the_tolerance_sends_on_the_reserved_slot() -> None:
    clock, pacer = Clock(2.0), Pacer([9.0])
    timer = make_timer(clock, Lease(), pacer)
    assert timer.on_time(2.0 - LATE_S / 2, not_after=100.0) == 2.0 - LATE_S / 2
    assert pacer.asked == [] and clock.now == 2.0
    assert not hasattr(pacer, "released")


def test_a_late_wake_gives_its_slot_back_and_waits_for_a_fresh_one_before_the_end() -> None:
    clock, pacer = Clock(2.0), Pacer([5.0])
    timer = make_timer(clock, Lease(), pacer)
    assert timer.on_time(1.0, not_after=100.0) == 5.0
    assert pacer.asked == [(1, 100.0)] and clock.now == 5.0
    assert pacer.released == [1.0]
    # It was due: the limits' next slot, not one after the pacing plan's last (each late
    # wake would push the plan a gap later, past the run's end on a busy machine).
    assert pacer.paced == [False]


def test_a_late_wake_without_a_fresh_slot_before_the_end_does_not_send() -> None:
    clock, pacer = Clock(2.0), Pacer([50.0])
    timer = make_timer(clock, Lease(), pacer)
    assert timer.on_time(1.0, not_after=10.0) is None
    assert clock.now == 2.0 and pacer.released == [1.0]


def test_a_lease_lost_while_waiting_gives_the_slot_back() -> None:
    clock, pacer = Clock(0.0), Pacer([])
    timer = make_timer(clock, Lease(good=1), pacer)
    assert timer.on_time(5.0, not_after=10.0) is None
    assert timer.lease_lost and pacer.released == [5.0]


@pytest.mark.parametrize(
    ("min_gap_s", "expected"),
    [(0.0, [0.0, 0.1, 1.0, 1.1]), (0.3, [0.0, 0.3, 1.0, 1.3])],
)
def test_actual_send_times_keep_every_window_and_the_minimum_gap(
    min_gap_s: float, expected: list[float]
) -> None:
    """Two per second: however early the lane is ready, the third send waits for the window."""
    clock = Clock()
    timer = make_timer(clock, Lease())
    timer.sent_log = SendLog([Window(1000, 2)], min_gap_s)
    sent = []
    for _ in expected:
        assert timer.guard_actual_times() is True
        sent.append(round(clock.now, 6))
        clock.now += 0.1  # the lane is ready again 100 ms later
    assert sent == expected
    assert [round(t, 6) for t in timer.sent_log.times] == expected
